"""N-MNIST through tonic, framed to ``T`` bins, binarised and bit-packed.

Files: ``<data_dir>/NMNIST/{Train,Test}/<digit>/*.bin`` (real or synthetic, same format). Samples
are read with ``tonic.datasets.NMNIST`` (tonic's file walk, labels from the folder names and
``tonic.io.read_mnist_file``), framed with ``tonic.transforms.ToFrame(sensor_size, n_time_bins=T)``
(each sample's own first-to-last event span cut into ``T`` bins, the standard N-MNIST recipe),
event counts clipped to 1 and flattened in ``(polarity, y, x)`` order: ``[T, 2 * 34 * 34]``, then
packed along time. The packed arrays are cached on disk, keyed by the folder and the framing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import SnnbenchError
from .shd import cache_dir
from .staging import SpikeDataset, pack

SENSOR_SIZE = (34, 34, 2)  # tonic's (x, y, polarity)
INPUT_SHAPE = (2, 34, 34)  # the network's (C, H, W)
CACHE_VERSION = 1
FOLDERS = {"train": "Train", "test": "Test"}


def split_dir(data_dir: Path, split: str) -> Path:
    return Path(data_dir) / "NMNIST" / FOLDERS[split]


def has_nmnist(data_dir: Path) -> bool:
    """Both split folders exist and hold at least one ``.bin`` file."""
    return all(split_dir(data_dir, s).is_dir() and next(split_dir(data_dir, s).glob("*/*.bin"), None) is not None
               for s in FOLDERS)


def describe_source(data_dir: Path) -> dict:
    """Whether ``data_dir`` holds snnbench's synthetic N-MNIST (its marker file) and which generator.

    Also checks every ``.bin`` file's size (a stat each, no reading): N-MNIST records are 5 bytes, so
    a truncated or foreign file is named here, before any run starts, not deep inside a worker."""
    from .synthetic_nmnist import MARKER

    from .validate import validate_nmnist

    counts, listed = {}, {}
    for split in FOLDERS:  # one listing per split: sizes checked and samples counted together
        files = sorted(split_dir(data_dir, split).glob("*/*.bin"))
        bad = [p for p in files if p.stat().st_size % 5]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise SnnbenchError(f"{bad[0]}: {bad[0].stat().st_size} bytes is not a whole number of 5-byte "
                                f"N-MNIST events{more}; is it truncated or corrupt?")
        counts[split], listed[split] = len(files), files
    # every event and label checked (once: cached), and the fingerprint a run's manifest keeps
    found = {"samples": counts["train"], "test_samples": counts["test"],
             "fingerprint": validate_nmnist(Path(data_dir), listed)}
    marker = Path(data_dir) / "NMNIST" / MARKER
    if marker.exists():
        try:
            info = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            info = None
        if not isinstance(info, dict) or not isinstance(info.get("generator"), str):
            raise SnnbenchError(f"{marker}: corrupt marker of snnbench's synthetic N-MNIST; delete the folder "
                                f"{marker.parent} to regenerate it")
        return {"synthetic": True, "generator": info["generator"], **found}
    return {"synthetic": False, "generator": None, **found}


def _tonic_dataset(data_dir: Path, split: str, time_steps: int):
    """``tonic.datasets.NMNIST`` over local files, with the ``ToFrame`` transform.

    tonic's existence check wants the downloaded archive and at least 10,000 ``.bin`` files, and
    downloads otherwise; a data dir with a subset (or no archive) is still valid here, and nothing
    may be downloaded. The subclass keeps tonic's name (its folder is named after the class) and
    replaces only that check.
    """
    import tonic

    def _check_exists(self) -> bool:
        folder = Path(self.location_on_system, self.folder_name)
        if not folder.is_dir():
            raise SnnbenchError(f"{folder} does not exist")
        return True

    local = type("NMNIST", (tonic.datasets.NMNIST,), {"_check_exists": _check_exists})
    frame = tonic.transforms.ToFrame(sensor_size=SENSOR_SIZE, n_time_bins=time_steps)
    return local(save_to=str(data_dir), train=(split == "train"), transform=frame)


def _frame_chunk(args) -> tuple[np.ndarray, np.ndarray]:
    data_dir, split, time_steps, indices = args
    dataset = _tonic_dataset(Path(data_dir), split, time_steps)
    dense = np.zeros((len(indices), time_steps, math.prod(INPUT_SHAPE)), np.uint8)
    labels = np.empty(len(indices), np.int32)
    for j, i in enumerate(indices):
        try:
            frames, label = dataset[int(i)]
        except (OSError, ValueError, IndexError) as exc:
            raise SnnbenchError(f"{dataset.data[int(i)]}: cannot read events ({exc})") from None
        frames = np.asarray(frames)  # [T', 2, 34, 34] counts; T' = T unless the sample is empty
        n = min(len(frames), time_steps)
        dense[j, :n] = (frames[:n] > 0).reshape(n, -1)
        labels[j] = label
    return pack(dense), labels


def _cache_key(folder: Path, **framing) -> str:
    st = folder.stat()
    files = sum(1 for _ in folder.glob("*/*.bin"))
    blob = json.dumps({"path": str(folder.resolve()), "mtime": st.st_mtime_ns, "files": files,
                       "v": CACHE_VERSION, **framing}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def load_split(data_dir: Path, split: str, time_steps: int, limit: int | None = None, seed: int = 0,
               workers: int | None = None) -> SpikeDataset:
    """Read one split through tonic; returns it framed and packed, ``[N, T/8, 2312]`` (cached).

    ``limit`` keeps a seeded random subset of that many samples (None: all). Framing runs in
    ``workers`` processes (default: every core, at most 16) for large splits.
    """
    folder = split_dir(data_dir, split)
    if not folder.is_dir():
        raise SnnbenchError(f"data dir {data_dir} has no N-MNIST {split} split (expected {folder})")
    source = describe_source(data_dir)
    key = _cache_key(folder, T=time_steps, limit=limit, seed=seed)
    cached = cache_dir() / "binned" / f"nmnist-{split}-{key}.npz"
    meta = {"dataset": "nmnist", "split": split, "num_classes": 10, "time_steps": time_steps,
            "input_shape": list(INPUT_SHAPE), "path": str(folder), **source}
    if cached.exists():
        with np.load(cached) as z:
            return SpikeDataset(z["packed"], z["labels"], time_steps, {**meta, "cache": str(cached)})
    n_total = len(_tonic_dataset(data_dir, split, time_steps))
    if n_total == 0:
        raise SnnbenchError(f"{folder} holds no .bin files")
    indices = np.arange(n_total)
    if limit is not None and limit < n_total:
        indices = np.sort(np.random.default_rng(seed).choice(n_total, limit, replace=False))
    workers = workers or min(os.cpu_count() or 1, 16)
    chunks = np.array_split(indices, max(1, min(len(indices) // 500, workers * 4)))
    jobs = [(str(data_dir), split, time_steps, c) for c in chunks if len(c)]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_frame_chunk, jobs))
    else:
        parts = [_frame_chunk(j) for j in jobs]
    packed = np.concatenate([p for p, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, packed=packed, labels=labels)
    tmp.replace(cached)
    return SpikeDataset(packed, labels, time_steps, {**meta, "cache": str(cached)})
