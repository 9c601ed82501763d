"""Spiking Heidelberg Digits through tonic, binned to ``T`` steps and bit-packed.

Files: ``<data_dir>/SHD/shd_{train,test}.h5`` (real or synthetic, same format). Samples are read
with ``tonic.datasets.SHD`` (events in microseconds), binned to ``time_steps`` bins over
``duration_s`` seconds, channels downsampled ``700 -> channels`` by integer division, counts clipped
to 1, and packed. The packed arrays are cached on disk, keyed by the source file and the binning.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import SnnbenchError
from .staging import SpikeDataset, pack

SHD_CHANNELS = 700
CACHE_VERSION = 1


def shd_files(data_dir: Path) -> dict[str, Path]:
    return {split: Path(data_dir) / "SHD" / f"shd_{split}.h5" for split in ("train", "test")}


def has_shd(data_dir: Path) -> bool:
    return all(p.exists() for p in shd_files(data_dir).values())


def describe_source(path: Path) -> dict:
    """Facts about an SHD file: whether it is snnbench's synthetic set, its sample count.

    Checks the structure tonic relies on (``spikes/times``, ``spikes/units`` and ``labels``, one
    entry per sample), so that a malformed or truncated file is one error line before a run."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            lengths = {}
            for name in ("spikes/times", "spikes/units", "labels"):
                node = f.get(name)
                if not isinstance(node, h5py.Dataset):
                    what = "no" if node is None else f"a {type(node).__name__.lower()} as its"
                    raise SnnbenchError(f"{path}: not an SHD file ({what} '{name}' dataset)")
                if node.ndim != 1:
                    raise SnnbenchError(f"{path}: not an SHD file ('{name}' has shape {node.shape}, "
                                        "expected one entry per sample)")
                lengths[name] = node.shape[0]
            if len(set(lengths.values())) != 1:
                raise SnnbenchError(f"{path}: not an SHD file (sample counts differ: {lengths})")
            if lengths["labels"]:  # the last sample is written last: a cut file fails here
                f["spikes/times"][-1], f["spikes/units"][-1], f["labels"][-1]
            synthetic = f.attrs.get("snnbench_synthetic")
            return {
                "path": str(path),
                "samples": int(lengths["labels"]),
                "synthetic": bool(synthetic),
                "generator": str(synthetic) if synthetic else None,
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).split("(")[0].strip() or "unreadable"
        raise SnnbenchError(f"{path}: cannot read HDF5 file ({reason}); is it truncated or corrupt?") from None


def describe_splits(data_dir: Path) -> dict:
    """:func:`describe_source` of the train split, with both splits checked and counted, and their
    contents validated (:func:`snnbench.data.validate.validate_shd`, cached): ``fingerprint`` of both."""
    import hashlib

    from .validate import validate_shd

    files = shd_files(data_dir)
    train, test = describe_source(files["train"]), describe_source(files["test"])
    prints = [validate_shd(files[split]) for split in ("train", "test")]
    return {**train, "test_samples": test["samples"], "fingerprint": hashlib.sha256(":".join(prints).encode()).hexdigest()}


def _cache_key(path: Path, **binning) -> str:
    st = path.stat()
    blob = json.dumps({"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns, "v": CACHE_VERSION, **binning}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return Path(os.environ.get("SNNBENCH_CACHE", Path.home() / ".cache" / "snnbench"))


def bin_events(
    events_t_us: list[np.ndarray], events_x: list[np.ndarray], time_steps: int, channels: int, duration_s: float
) -> np.ndarray:
    """Events of ``N`` samples -> binary ``uint8 [N, T, C]`` (counts clipped to 1).

    An event at ``t`` microseconds falls in bin ``floor(t / (duration_s * 1e6) * T)``; events at or
    after ``duration_s`` are dropped. Channel ``x`` maps to ``x * channels // 700``.
    """
    n = len(events_t_us)
    lengths = np.fromiter((len(t) for t in events_t_us), np.int64, n)
    sample = np.repeat(np.arange(n), lengths)
    t = np.concatenate(events_t_us) if n else np.zeros(0)
    x = np.concatenate(events_x).astype(np.int64) if n else np.zeros(0, np.int64)
    b = np.floor(t / (duration_s * 1e6) * time_steps).astype(np.int64)
    keep = (b >= 0) & (b < time_steps) & (x >= 0) & (x < SHD_CHANNELS)
    dense = np.zeros((n, time_steps, channels), np.uint8)
    dense[sample[keep], b[keep], x[keep] * channels // SHD_CHANNELS] = 1
    return dense


def load_split(
    data_dir: Path,
    split: str,
    time_steps: int,
    channels: int,
    duration_s: float,
    limit: int | None = None,
    seed: int = 0,
) -> SpikeDataset:
    """Read one split through tonic and return it binned and packed (cached).

    ``limit`` keeps a seeded random subset of that many samples (None: all).
    """
    path = shd_files(data_dir)[split]
    if not path.exists():
        raise SnnbenchError(f"data dir {data_dir} has no SHD {split} split (expected {path})")
    source = describe_source(path)
    key = _cache_key(path, T=time_steps, C=channels, duration=duration_s, limit=limit, seed=seed)
    cached = cache_dir() / "binned" / f"shd-{split}-{key}.npz"
    meta = {"dataset": "shd", "split": split, "num_classes": 20, "time_steps": time_steps, "channels": channels,
            "duration_s": duration_s, **source}
    if cached.exists():
        with np.load(cached) as z:
            return SpikeDataset(z["packed"], z["labels"], time_steps, {**meta, "cache": str(cached)})
    packed, labels = _read_with_tonic(data_dir, split, time_steps, channels, duration_s, limit, seed, source["samples"])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, packed=packed, labels=labels)
    tmp.replace(cached)
    return SpikeDataset(packed, labels, time_steps, {**meta, "cache": str(cached)})


def _read_with_tonic(data_dir, split, time_steps, channels, duration_s, limit, seed, n_total):
    import tonic

    zip_marker = shd_files(data_dir)[split].with_name(f"shd_{split}.h5.zip")
    if not zip_marker.exists():
        # tonic looks for the downloaded archive next to the .h5 and would try to download it.
        zip_marker.touch()
    dataset = tonic.datasets.SHD(save_to=str(data_dir), train=(split == "train"))
    indices = np.arange(n_total)
    if limit is not None and limit < n_total:
        indices = np.sort(np.random.default_rng(seed).choice(n_total, limit, replace=False))
    ts, xs, labels = [], [], np.empty(len(indices), np.int32)
    try:
        for j, i in enumerate(indices):
            events, label = dataset[int(i)]
            ts.append(events["t"])
            xs.append(events["x"])
            labels[j] = label
    except OSError as exc:
        raise SnnbenchError(f"{shd_files(data_dir)[split]}: failed reading sample {i} ({exc}); truncated file?") from None
    return pack(bin_events(ts, xs, time_steps, channels, duration_s)), labels
