"""Datasets: locating them, falling back to synthetic sets, binning, bit-packing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SnnbenchError
from . import nmnist, shd, synthetic_nmnist, synthetic_shd
from .staging import SpikeDataset, pack, unpack

DATA_ENV = "SNNBENCH_DATA_DIR"


@dataclass
class DataSource:
    """Where a dataset is read from, and whether it is snnbench's synthetic stand-in."""

    root: Path
    synthetic: bool
    note: str


def default_data_dir() -> Path:
    return shd.cache_dir() / "data"


def resolve_shd(data_dir: str | Path | None, train_samples: int | None, test_samples: int | None) -> DataSource:
    """Find SHD: ``data_dir``, else ``$SNNBENCH_DATA_DIR``, else the default cache dir; if none has it
    and no directory was named, generate the synthetic set (sized for the case) and use that."""
    named = data_dir or os.environ.get(DATA_ENV)
    if named:
        root = Path(named).expanduser()
        if not root.is_dir():
            raise SnnbenchError(f"data dir {root} does not exist")
        if not shd.has_shd(root):
            raise SnnbenchError(
                f"data dir {root} has no SHD (expected {root}/SHD/shd_train.h5 and shd_test.h5); "
                f"omit --data-dir to use the synthetic set, or run 'snnbench make-data shd --out {root}'"
            )
    else:
        root = default_data_dir()
        if not shd.has_shd(root):
            n_train = train_samples or synthetic_shd.FULL_SIZES[0]
            n_test = test_samples or synthetic_shd.FULL_SIZES[1]
            root = shd.cache_dir() / "synthetic" / f"shd-{synthetic_shd.FORMAT_VERSION}-{n_train}-{n_test}"
            if not shd.has_shd(root):
                synthetic_shd.write_synthetic_shd(root, n_train, n_test)
    info = shd.describe_source(shd.shd_files(root)["train"])
    if info["synthetic"]:
        note = f"synthetic SHD ({info['generator']}, {info['samples']} train samples) from {root}: no real SHD found"
    else:
        note = f"SHD from {root}"
    return DataSource(root=root, synthetic=info["synthetic"], note=note)


def resolve_nmnist(data_dir: str | Path | None, train_samples: int | None,
                   test_samples: int | None) -> DataSource:
    """Find N-MNIST as :func:`resolve_shd` finds SHD; the synthetic set is written when none is found
    and no directory was named."""
    named = data_dir or os.environ.get(DATA_ENV)
    if named:
        root = Path(named).expanduser()
        if not root.is_dir():
            raise SnnbenchError(f"data dir {root} does not exist")
        if not nmnist.has_nmnist(root):
            raise SnnbenchError(
                f"data dir {root} has no N-MNIST (expected {root}/NMNIST/Train/<digit>/*.bin and Test/); "
                f"omit --data-dir to use the synthetic set, or run 'snnbench make-data nmnist --out {root}'"
            )
    else:
        root = default_data_dir()
        if not nmnist.has_nmnist(root):
            n_train = train_samples or synthetic_nmnist.FULL_SIZES[0]
            n_test = test_samples or synthetic_nmnist.FULL_SIZES[1]
            root = shd.cache_dir() / "synthetic" / f"nmnist-{synthetic_nmnist.FORMAT_VERSION}-{n_train}-{n_test}"
            marker = root / "NMNIST" / synthetic_nmnist.MARKER
            if not marker.exists():  # the marker is written last: its absence means unfinished
                synthetic_nmnist.write_synthetic_nmnist(root, n_train, n_test)
    info = nmnist.describe_source(root)
    if info["synthetic"]:
        note = f"synthetic N-MNIST ({info['generator']}, {info['samples']} train samples) from {root}: no real N-MNIST found"
    else:
        note = f"N-MNIST from {root}"
    return DataSource(root=root, synthetic=info["synthetic"], note=note)


def resolve_source(dataset: str, data_dir: str | Path | None, train_samples: int | None,
                   test_samples: int | None) -> DataSource | None:
    """The data source of a file-backed dataset; None for generated ones (random, cue)."""
    if dataset == "shd":
        return resolve_shd(data_dir, train_samples, test_samples)
    if dataset == "nmnist":
        return resolve_nmnist(data_dir, train_samples, test_samples)
    return None


def load_dataset(case_spec, source: DataSource | None) -> tuple[SpikeDataset, SpikeDataset]:
    """Train and test splits for a case (binning and sample counts from the case)."""
    if case_spec.dataset == "cue":
        from .cue import make_cue_split

        T, C, seed = case_spec.time_steps, case_spec.channels, case_spec.seed
        return (make_cue_split(case_spec.train_samples or 2048, T, C, seed * 3 + 1),
                make_cue_split(case_spec.test_samples or 512, T, C, seed * 3 + 2))
    if case_spec.dataset == "nmnist":
        kw = dict(time_steps=case_spec.time_steps, seed=case_spec.seed)
        train = nmnist.load_split(source.root, "train", limit=case_spec.train_samples, **kw)
        test = nmnist.load_split(source.root, "test", limit=case_spec.test_samples, **kw)
        for split in (train, test):
            split.meta["synthetic"] = source.synthetic
        return train, test
    if case_spec.dataset != "shd":
        raise SnnbenchError(f"dataset {case_spec.dataset!r} is not supported yet")
    kw = dict(time_steps=case_spec.time_steps, channels=case_spec.channels, duration_s=case_spec.duration_s,
              seed=case_spec.seed)
    train = shd.load_split(source.root, "train", limit=case_spec.train_samples, **kw)
    test = shd.load_split(source.root, "test", limit=case_spec.test_samples, **kw)
    for split in (train, test):
        split.meta["synthetic"] = source.synthetic
    return train, test


__all__ = ["DataSource", "SpikeDataset", "pack", "unpack", "resolve_shd", "resolve_nmnist", "resolve_source",
           "load_dataset", "default_data_dir"]
