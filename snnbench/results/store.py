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
from typing import Any

from ..errors import DiskFull, SnnbenchError, is_disk_full

STATUSES = ("ok", "skipped", "failed", "timeout", "oom", "crashed")
MANIFEST = "manifest.json"
RECORDS = "records.jsonl"


#: fields every record has; a JSON line without them is not a record
RECORD_KEYS = ("case", "runner", "metric", "status")
#: manifest fields a run needs to be reported or resumed
MANIFEST_KEYS = {"suite": str, "status": str}
LOCK = ".lock"
#: the names inside a run directory snnbench reads or writes; none may be a symbolic link
SPECIAL = (MANIFEST, RECORDS, LOCK, "logs", "weights", "scratch", "nir")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _disk_full(exc: OSError, path: Path) -> DiskFull:
    return DiskFull(f"no space left on device writing {path}")


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file at ``path`` (a leftover there is replaced, never followed)."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDir:
    """One benchmark run on disk. Its writer holds an exclusive lock (:meth:`lock`) for as long as it
    writes, so two processes never append to one run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.skipped_lines: list[tuple[int, str]] = []  # (line number, why) of the last records() read
        self._lock_fd: int | None = None

    @classmethod
    def create(cls, parent: Path, suite: str) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        parent = Path(parent)
        if parent.exists() and not parent.is_dir():
            raise SnnbenchError(f"--out {parent} is a file, not a directory")
        path = parent / f"{suite}-{stamp}"
        if path.resolve().parent != parent.resolve():  # the suite name is validated; this is the backstop
            raise SnnbenchError(f"suite name {suite!r} would place the run directory outside {parent}")
        n = 1
        while path.exists():
            n += 1
            path = parent / f"{suite}-{stamp}-{n}"
        try:
            path.mkdir(parents=True)
            (path / "logs").mkdir()
        except OSError as exc:
            raise SnnbenchError(f"cannot create the run directory {path}: {exc.strerror}") from None
        run = cls(path)
        run.lock()
        return run

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        path = Path(path)
        run = cls(path)
        if not run.special(MANIFEST).is_file():
            raise SnnbenchError(f"{path} is not a snnbench run directory (no {MANIFEST})")
        return run

    def special(self, name: str) -> Path:
        """The path of one of the run's own files or folders, refused if it is a symbolic link: what
        snnbench reads or writes inside a run directory is never somewhere else."""
        path = self.path / name
        if path.is_symlink():
            kind = "folder" if name in ("logs", "weights", "scratch", "nir") else "file"
            raise SnnbenchError(f"{path} is a symbolic link; snnbench never follows a link inside a run directory "
                                f"(replace it with the real {kind})")
        return path

    def check_links(self) -> None:
        """Refuse the run directory if any of its own files or folders is a symbolic link."""
        for name in SPECIAL:
            self.special(name)

    def lock(self) -> None:
        """Take the run's writer lock, or fail with one line naming the process that holds it.

        An ``flock`` dies with its process, so a killed run never leaves a stale lock behind."""
        import fcntl

        if self._lock_fd is not None:
            return
        self.check_links()  # the writer's entry: nothing it writes may lead elsewhere
        try:
            fd = os.open(self.special(LOCK), os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            if is_disk_full(exc):
                raise _disk_full(exc, self.path / LOCK) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SnnbenchError(f"{self.path} is being written by another snnbench process (pid {holder}); "
                                "wait for it to finish, or stop it, then --resume") from None
        os.ftruncate(fd, 0)
        try:
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:  # the pid is only for the message of a second writer; a full disk must not stop here
            pass
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically; on a full disk nothing is left behind and :class:`DiskFull` says so."""
        target = self.special(MANIFEST)
        _replace_with(target, self.path / f"{MANIFEST}.{os.getpid()}.tmp",
                      json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())

    def manifest(self) -> dict[str, Any]:
        where = self.special(MANIFEST)
        try:
            data = json.loads(where.read_text())
        except json.JSONDecodeError as exc:
            raise SnnbenchError(f"{where}: not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError:
            raise SnnbenchError(f"{where}: not a text file") from None
        if not isinstance(data, dict):
            raise SnnbenchError(f"{where}: expected a JSON object, got {type(data).__name__}")
        for key, kind in MANIFEST_KEYS.items():
            if not isinstance(data.get(key), kind):
                raise SnnbenchError(f"{where}: no {key!r} field; not a snnbench run manifest")
        return data

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and push it to disk before returning.

        If the file's last line was cut short (a writer killed mid-line), the record starts on a new
        line, so it is not glued to the fragment and lost with it. A write that fails (a full disk) is
        undone: no partial line stays behind, and :class:`DiskFull` says what happened."""
        line = (json.dumps(record, sort_keys=True, default=_jsonable) + "\n").encode()
        path = self.special(RECORDS)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as exc:
            if is_disk_full(exc):
                raise _disk_full(exc, path) from None
            raise
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, size)  # shrinking needs no space: the file is as it was
                if is_disk_full(exc):
                    raise _disk_full(exc, path) from None
                raise
        finally:
            os.close(fd)

    def records(self) -> list[dict[str, Any]]:
        """The valid records; what was skipped, and why, is left in :attr:`skipped_lines`."""
        records, self.skipped_lines = read_records(self.special(RECORDS))
        return records

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the records file atomically (resume drops unfinished jobs and cut lines)."""
        path = self.special(RECORDS)
        _replace_with(path, path.with_suffix(f".{os.getpid()}.tmp"),
                      "".join(json.dumps(r, sort_keys=True, default=_jsonable) + "\n" for r in records).encode())

    def write_file(self, folder: str, name: str, data: bytes) -> Path:
        """Write one file of a run folder (``logs``, ``weights``) from a name that came from elsewhere: its
        base name only, never through a link."""
        where = self.special(folder)
        where.mkdir(exist_ok=True)
        path = where / os.path.basename(name)
        try:
            _write_new(path, data)
        except OSError as exc:
            if is_disk_full(exc):
                raise _disk_full(exc, path) from None
            raise
        return path

    @property
    def log_dir(self) -> Path:
        return self.special("logs")

    @property
    def weights_dir(self) -> Path:
        """Trained canonical weights (``<case>--<runner>.npz``), named by the records' ``weights``."""
        return self.special("weights")

    @property
    def scratch_dir(self) -> Path:
        """Job files and compile caches of running workers; removed when the run ends or resumes."""
        return self.special("scratch")


def _replace_with(target: Path, tmp: Path, data: bytes) -> None:
    """``target`` replaced by ``data`` whole or not at all (written to ``tmp``, then renamed); a full disk
    leaves nothing behind and is reported as such."""
    try:
        _write_new(tmp, data)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise _disk_full(exc, target) from None
        raise


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Records of a ``records.jsonl`` and the lines skipped as ``(line number, why)``: a line cut
    short by a crash, text that is not JSON, JSON that is not a record object."""
    records: list[dict[str, Any]] = []
    skipped: list[tuple[int, str]] = []
    if not Path(path).exists():
        return records, skipped
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                skipped.append((number, "cut short" if not line.endswith("\n") else "not JSON"))
                continue
            why = record_problem(record)
            if why:
                skipped.append((number, why))
            else:
                records.append(record)
    return records, skipped


def record_problem(record: Any) -> str:
    """Why a JSON value is not a usable record ('' if it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record object"
    missing = [k for k in RECORD_KEYS if not isinstance(record.get(k), str)]
    if missing:
        return f"no {missing[0]!r}"
    if record["status"] not in STATUSES:
        return f"unknown status {record['status']!r}"
    return ""


def describe_skipped(skipped: list[tuple[int, str]]) -> str:
    """'3 line(s) skipped (line 4: cut short; line 9: not JSON; ...)'."""
    shown = "; ".join(f"line {n}: {why}" for n, why in skipped[:3])
    more = f"; {len(skipped) - 3} more" if len(skipped) > 3 else ""
    return f"{len(skipped)} line(s) skipped ({shown}{more})"


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
