"""A dataset's contents, checked once before any job: what a loader would otherwise drop silently or fail on
inside a worker (a label outside the classes, a unit outside the 700 channels, a spike time that is negative,
NaN or infinite, ``times`` and ``units`` of different lengths, an N-MNIST event off the 34x34 sensor, a label
folder that is not a digit). The first bad sample is named with its file and field, in one line.

The same pass takes the data's fingerprint (SHA-256 of the files' contents), which a run's manifest keeps so
that ``--resume`` can refuse data that changed. Both are cached per file (path, size, modification time), so
a data dir is read in full once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import SnnbenchError

VERSION = 1
SHD_CLASSES = 20
SHD_UNITS = 700
NMNIST_CLASSES = 10
NMNIST_SENSOR = 34
CHUNK = 1024
#: the classes each labelled dataset has (a network must have at least as many outputs)
CLASSES = {"shd": SHD_CLASSES, "nmnist": NMNIST_CLASSES, "cue": 4}


def _cache_path(key: dict) -> Path:
    from .shd import cache_dir

    blob = json.dumps({**key, "v": VERSION}, sort_keys=True).encode()
    return cache_dir() / "validated" / f"{hashlib.sha256(blob).hexdigest()[:24]}.json"


def _cached(key: dict, compute) -> str:
    path = _cache_path(key)
    try:
        return json.loads(path.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    fingerprint = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, **key}))
        tmp.replace(path)
    except OSError:  # a cache that cannot be written only costs the next run a re-read
        pass
    return fingerprint


def _file_hash(path: Path, h=None) -> "hashlib._Hash":
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def _stat_key(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns}


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def validate_shd(path: Path) -> str:
    """Check an SHD split's contents (module docstring); returns its fingerprint."""
    path = Path(path)
    return _cached({"kind": "shd", **_stat_key(path)}, lambda: _check_shd(path))


def _check_shd(path: Path) -> str:
    import h5py

    where = f"{path}"
    with h5py.File(path, "r") as f:
        labels = f["labels"][:]
        if labels.dtype.kind not in "iu":
            bad = _first(~np.isfinite(labels.astype(np.float64)) | (labels != np.round(labels)))
            if bad is not None:
                raise SnnbenchError(f"{where}: labels of sample {bad} is {labels[bad]!r}, not a class number")
        bad = _first((labels < 0) | (labels >= SHD_CLASSES))
        if bad is not None:
            raise SnnbenchError(f"{where}: labels of sample {bad} is {labels[bad]}, outside SHD's {SHD_CLASSES} "
                                f"classes [0, {SHD_CLASSES})")
        times_ds, units_ds = f["spikes/times"], f["spikes/units"]
        for start in range(0, len(labels), CHUNK):
            times, units = times_ds[start:start + CHUNK], units_ds[start:start + CHUNK]
            n_t = np.fromiter((len(t) for t in times), np.int64, len(times))
            n_u = np.fromiter((len(u) for u in units), np.int64, len(units))
            bad = _first(n_t != n_u)
            if bad is not None:
                raise SnnbenchError(f"{where}: spikes/times and spikes/units of sample {start + bad} differ in "
                                    f"length ({n_t[bad]} and {n_u[bad]} events)")
            ends = np.cumsum(n_t)
            if not ends.size or not ends[-1]:
                continue
            t = np.concatenate([np.asarray(v, np.float64) for v in times])
            u = np.concatenate([np.asarray(v, np.float64) for v in units])
            for field, mask, rule in (
                    ("spikes/times", ~np.isfinite(t) | (t < 0), "a spike time is a finite number of seconds >= 0"),
                    ("spikes/units", ~np.isfinite(u) | (u < 0) | (u >= SHD_UNITS) | (u != np.floor(u)),
                     f"a unit is one of SHD's {SHD_UNITS} channels [0, {SHD_UNITS})")):
                event = _first(mask)
                if event is not None:
                    sample = int(np.searchsorted(ends, event, side="right"))
                    j = event - (int(ends[sample - 1]) if sample else 0)
                    value = (t if field == "spikes/times" else u)[event]
                    raise SnnbenchError(f"{where}: {field} of sample {start + sample} holds {value:g} at event {j}; "
                                        f"{rule}")
    return _file_hash(path).hexdigest()


def validate_nmnist(data_dir: Path, files: dict[str, list[Path]]) -> str:
    """Check every N-MNIST file (module docstring), ``files`` per split as listed; returns the fingerprint."""
    stats = []
    for split in sorted(files):
        for p in files[split]:
            st = p.stat()
            stats.append((str(p.relative_to(data_dir)), st.st_size, st.st_mtime_ns))
    key = {"kind": "nmnist", "path": str(Path(data_dir).resolve()),
           "files": hashlib.sha256(json.dumps(stats).encode()).hexdigest()}
    return _cached(key, lambda: _check_nmnist(Path(data_dir), files))


def _check_nmnist(data_dir: Path, files: dict[str, list[Path]]) -> str:
    h = hashlib.sha256()
    for split in sorted(files):
        for p in files[split]:
            label = p.parent.name
            if not (label.isdigit() and int(label) < NMNIST_CLASSES and label == str(int(label))):
                raise SnnbenchError(f"{p.parent}: N-MNIST's folder names are its labels, the digits 0-9; "
                                    f"{label!r} is not one")
            raw = np.fromfile(p, np.uint8).reshape(-1, 5)
            for axis, column in (("x", 0), ("y", 1)):
                event = _first(raw[:, column] >= NMNIST_SENSOR)
                if event is not None:
                    raise SnnbenchError(f"{p}: event {event} has {axis} {raw[event, column]}, outside the "
                                        f"{NMNIST_SENSOR}x{NMNIST_SENSOR} sensor")
            h.update(str(p.relative_to(data_dir)).encode() + b"\0")
            h.update(raw.tobytes())
    return h.hexdigest()
