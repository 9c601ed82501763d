"""A synthetic stand-in for SHD, written in SHD's exact HDF5 format.

The real data cannot be downloaded here, so this module writes ``SHD/shd_{train,test}.h5`` with the
layout of the Spiking Heidelberg Digits files (``spikes/times`` in seconds as variable-length float
arrays, ``spikes/units`` 0..699, ``labels``, ``extra/keys``, ``extra/speaker``) plus the empty
``.zip`` marker tonic checks for, and the files are read back through ``tonic.datasets.SHD``.

The task is built to need temporal processing, not just spike counts:

* 12 "phoneme" components, each a band of channels sweeping from one frequency to another over
  100-220 ms (a formant-like trajectory).
* Each of the 20 classes ("words") is a sequence of three components. Classes come in pairs that
  use the *same three components in reverse order*: their spike-count histograms over channels are
  equal in expectation, so a classifier must use timing and order.
* Per sample ("speaker" and utterance variation): time warp 0.85-1.15x, onset 20-120 ms, a global
  channel offset of up to +-18 channels, a per-component gap, per-spike time jitter (3 ms) and
  channel jitter, Poisson spike counts (so spikes are dropped and added), and background noise at
  ~1.5 Hz per channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_CHANNELS = 700
N_CLASSES = 20
N_COMPONENTS = 12
FORMAT_VERSION = "snnbench-synthetic-shd-v1"
FULL_SIZES = (8156, 2264)
#: at least this many bytes per sample, in memory while a split is generated and in the file (measured: ~11 KB)
BYTES_PER_SAMPLE = 8000


def _components(rng: np.random.Generator) -> np.ndarray:
    """[N_COMPONENTS, 5]: start channel, end channel, band width, duration (s), rate (Hz per channel)."""
    start = rng.uniform(60, 640, N_COMPONENTS)
    sweep = rng.choice([-1, 1], N_COMPONENTS) * rng.uniform(40, 160, N_COMPONENTS)
    end = np.clip(start + sweep, 20, 680)
    width = rng.uniform(14, 30, N_COMPONENTS)
    duration = rng.uniform(0.10, 0.22, N_COMPONENTS)
    rate = rng.uniform(50, 90, N_COMPONENTS)
    return np.stack([start, end, width, duration, rate], axis=1)


def _words(rng: np.random.Generator) -> np.ndarray:
    """[N_CLASSES, 3] component indices: 10 triples, each used forwards and backwards."""
    words = []
    for _ in range(N_CLASSES // 2):
        triple = rng.choice(N_COMPONENTS, 3, replace=False)
        words += [triple, triple[::-1]]
    return np.asarray(words)


def _utterance(rng: np.random.Generator, word: np.ndarray, comps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (s, sorted) and units of one sample of ``word``."""
    warp = rng.uniform(0.85, 1.15)
    offset = rng.uniform(-18, 18)
    t0 = rng.uniform(0.02, 0.12)
    times, units = [], []
    for c in word:
        start, end, width, duration, rate = comps[c]
        d = duration * warp
        n = rng.poisson(rate * d * width)
        u = rng.uniform(0, d, n)
        centre = start + (end - start) * (u / d) + offset
        times.append(t0 + u + rng.normal(0, 0.003, n))
        units.append(centre + rng.normal(0, width / 2.5, n))
        t0 += d + rng.uniform(0.0, 0.04)
    n_noise = rng.poisson(1.5 * N_CHANNELS)
    times.append(rng.uniform(0, 1.0, n_noise))
    units.append(rng.uniform(0, N_CHANNELS, n_noise))
    t = np.concatenate(times)
    x = np.concatenate(units).round()
    keep = (t >= 0) & (t < 1.0) & (x >= 0) & (x < N_CHANNELS)
    t, x = t[keep], x[keep].astype(np.uint16)
    order = np.argsort(t, kind="stable")
    return t[order].astype(np.float32), x[order]


def generate(n: int, seed: int, task_seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """``n`` samples: (times list, units list, labels [n], speakers [n]). ``task_seed`` fixes the classes."""
    task_rng = np.random.default_rng(task_seed)
    comps, words = _components(task_rng), _words(task_rng)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    speakers = rng.integers(0, 10, n)
    times, units = [], []
    for label in labels:
        t, x = _utterance(rng, words[label], comps)
        times.append(t)
        units.append(x)
    return times, units, labels.astype(np.uint8), speakers.astype(np.uint16)


def write_split(path: Path, times, units, labels, speakers, seed: int) -> None:
    """Write one split in SHD's HDF5 layout, plus tonic's ``.zip`` marker beside it."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".h5.part")
    with h5py.File(tmp, "w") as f:
        n = len(labels)
        t_ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        u_ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        obj_t, obj_u = np.empty(n, object), np.empty(n, object)
        obj_t[:], obj_u[:] = times, units
        t_ds[:], u_ds[:] = obj_t, obj_u
        f.create_dataset("labels", data=labels)
        f.create_dataset("extra/speaker", data=speakers)
        f.create_dataset("extra/keys", data=np.array([f"synthetic-word-{k:02d}".encode() for k in range(N_CLASSES)]))
        f.attrs["snnbench_synthetic"] = FORMAT_VERSION
        f.attrs["snnbench_seed"] = seed
    tmp.replace(path)  # a crash mid-write leaves no truncated .h5 behind
    path.with_name(path.name + ".zip").touch()


def write_synthetic_shd(root: Path, n_train: int = FULL_SIZES[0], n_test: int = FULL_SIZES[1], seed: int = 0) -> Path:
    """Write ``root/SHD/shd_{train,test}.h5``; returns ``root``. Train and test use different seeds. A size
    the machine cannot hold (memory for the larger split, disk for both) is refused before anything is made."""
    from ..limits import check_disk, check_memory

    root = Path(root)
    subject = f"the synthetic SHD with {n_train + n_test} samples"
    check_memory(max(n_train, n_test) * BYTES_PER_SAMPLE, subject, hint="ask for fewer (--train, --test)")
    check_disk(root, (n_train + n_test) * BYTES_PER_SAMPLE, subject, hint="ask for fewer (--train, --test)")
    for split, n, split_seed in (("train", n_train, seed * 2 + 1), ("test", n_test, seed * 2 + 2)):
        times, units, labels, speakers = generate(n, split_seed)
        write_split(root / "SHD" / f"shd_{split}.h5", times, units, labels, speakers, split_seed)
    return root
