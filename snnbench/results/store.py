"""A run directory: ``manifest.json`` plus ``records.jsonl``, one record per line, appended and
flushed as each is produced, so an interrupted run keeps everything it finished.

Record fields (all records): ``suite, case, runner, metric, status, reason`` and, where they apply,
``framework, version, mode, device, dtype, shape, unit, samples, stats, value, accuracy, loss,
data, peak_rss_bytes, peak_device_bytes, parity, extra, time``. ``status`` is one of
:data:`STATUSES`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import SnnbenchError

STATUSES = ("ok", "skipped", "failed", "timeout", "oom", "crashed")
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"


class RunDir:
    """One benchmark run on disk."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, parent: Path, suite: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(parent) / f"{suite}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path(parent) / f"{suite}-{stamp}-{n}"
        path.mkdir(parents=True)
        (path / "logs").mkdir()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        path = Path(path)
        if not (path / MANIFEST).exists():
            raise SnnbenchError(f"{path} is not a snnbench run directory (no {MANIFEST})")
        return cls(path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        tmp.replace(self.path / MANIFEST)

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except json.JSONDecodeError as exc:
            raise SnnbenchError(f"{self.path / MANIFEST}: not valid JSON ({exc.msg})") from None

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and push it to disk before returning."""
        line = json.dumps(record, sort_keys=True, default=_jsonable) + "\n"
        with open(self.path / RECORDS, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.path / RECORDS))

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a ``records.jsonl``; a last line cut short by a crash is ignored."""
    if not Path(path).exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def _jsonable(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
