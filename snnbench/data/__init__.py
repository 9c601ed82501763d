"""Datasets: locating them, falling back to synthetic sets, binning, bit-packing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import SnnbenchError
from . import fetch, nmnist, shd, synthetic_nmnist, synthetic_shd
from .staging import SpikeDataset, pack, unpack

DATA_ENV = "SNNBENCH_DATA_DIR"


@dataclass
class DataSource:
    """Where a dataset is read from, and whether it is snnbench's synthetic stand-in."""

    root: Path
    synthetic: bool
    note: str
    train_samples: int = 0  # in the files (a case may use fewer)
    test_samples: int = 0
    #: SHA-256 of the files' contents (snnbench.data.validate): a resumed run refuses data that changed
    fingerprint: str = ""


def default_data_dir() -> Path:
    return shd.cache_dir() / "data"


@dataclass(frozen=True)
class _FileFormat:
    """How to find, describe and synthesise one file-backed dataset."""

    name: str  # as users read it
    command: str  # the make-data argument
    expected: Callable[[Path], str]  # what a data dir must hold
    present: Callable[[Path], bool]
    complete: Callable[[Path], bool]  # a synthetic set was written to the end
    describe: Callable[[Path], dict]  # {"synthetic", "generator", "samples"}
    write: Callable[[Path, int, int], object]
    full_sizes: tuple[int, int]
    version: str


FORMATS = {
    "shd": _FileFormat(
        name="SHD", command="shd", expected=lambda root: f"{root}/SHD/shd_train.h5 and shd_test.h5",
        present=shd.has_shd, complete=shd.has_shd,
        describe=shd.describe_splits,
        write=synthetic_shd.write_synthetic_shd, full_sizes=synthetic_shd.FULL_SIZES,
        version=synthetic_shd.FORMAT_VERSION),
    "nmnist": _FileFormat(
        name="N-MNIST", command="nmnist", expected=lambda root: f"{root}/NMNIST/Train/<digit>/*.bin and Test/",
        present=nmnist.has_nmnist,
        # the marker is written last: without it the synthetic set is unfinished
        complete=lambda root: (root / "NMNIST" / synthetic_nmnist.MARKER).exists(),
        describe=nmnist.describe_source, write=synthetic_nmnist.write_synthetic_nmnist,
        full_sizes=synthetic_nmnist.FULL_SIZES, version=synthetic_nmnist.FORMAT_VERSION),
}


def resolve_source(dataset: str, data_dir: str | Path | None, train_samples: int | None,
                   test_samples: int | None, *, offline: bool = False) -> DataSource | None:
    """Find a file-backed dataset (None for generated ones: random, cue): ``data_dir``, else
    ``$SNNBENCH_DATA_DIR``, else the default cache dir; if none has it and no directory was named,
    download the real set there (:mod:`.fetch`, unless ``offline`` or ``$SNNBENCH_OFFLINE``); if the
    network cannot be reached, generate the synthetic set (sized for the case) and say why."""
    fmt = FORMATS.get(dataset)
    if fmt is None:
        return None
    named = data_dir or os.environ.get(DATA_ENV)
    why_synthetic = ""
    if named:
        root = Path(named).expanduser()
        if not root.is_dir():
            raise SnnbenchError(f"data dir {root} does not exist")
        if not fmt.present(root):
            raise SnnbenchError(
                f"data dir {root} has no {fmt.name} (expected {fmt.expected(root)}); omit --data-dir to use "
                f"the default data dir, or run 'snnbench fetch-data {fmt.command} --out {root}' (real) or "
                f"'snnbench make-data {fmt.command} --out {root}' (synthetic)")
    else:
        root = default_data_dir()
        if not fmt.present(root):
            why_synthetic = _fetch_or_why_not(dataset, root, offline)
        if not fmt.present(root):
            n_train = train_samples or fmt.full_sizes[0]
            n_test = test_samples or fmt.full_sizes[1]
            root = shd.cache_dir() / "synthetic" / f"{dataset}-{fmt.version}-{n_train}-{n_test}"
            if not fmt.complete(root):
                fmt.write(root, n_train, n_test)
    info = fmt.describe(root)
    if info["synthetic"]:
        note = (f"synthetic {fmt.name} ({info['generator']}, {info['samples']} train samples) from {root}: "
                f"no real {fmt.name} found{f' ({why_synthetic})' if why_synthetic else ''}; get it with "
                f"'snnbench fetch-data {fmt.command}'")
    else:
        note = f"{fmt.name} from {root}"
    return DataSource(root=root, synthetic=info["synthetic"], note=note, train_samples=info["samples"],
                      test_samples=info["test_samples"], fingerprint=info.get("fingerprint", ""))


def _fetch_or_why_not(dataset: str, root: Path, offline: bool) -> str:
    """Download the real ``dataset`` into ``root``; '' when it did, else why not (offline). Errors
    after the server answered (HTTP, checksum, truncation) are not offline: they raise one line."""
    if offline or fetch.offline_requested():
        return f"offline: --offline or ${fetch.OFFLINE_ENV}"
    try:
        fetch.fetch(dataset, root, mirror=os.environ.get(fetch.MIRROR_ENV) or None)
    except fetch.Unreachable as exc:
        return f"offline: {exc}"
    return ""


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


__all__ = ["DataSource", "FORMATS", "SpikeDataset", "pack", "unpack", "resolve_source",
           "load_dataset", "default_data_dir"]
