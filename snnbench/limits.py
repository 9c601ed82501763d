"""Bounds on input, checked before it costs memory, disk or time.

* YAML (suites, publish profiles) is read only from a regular file (a FIFO or a device would block or never
  end) of at most :data:`MAX_YAML_BYTES`, as UTF-8 text, and with a bound on what its aliases expand to
  (:data:`MAX_YAML_NODES` nodes once every alias is followed), counted on the parsed node graph before a
  single Python object is built: an alias bomb is refused without being expanded, a recursive alias too.
* A suite expands to at most :data:`MAX_CASES` cases.
* Memory and disk: :func:`check_memory` and :func:`check_disk` hold an estimate (a lower bound: what the
  work needs at the very least) against what the machine has, or a limit the user set.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_mod
from pathlib import Path
from typing import Any

from .errors import SnnbenchError

MAX_YAML_BYTES = 1 << 20
#: nodes of a YAML document with every alias expanded (the committed suites have at most ~1,000)
MAX_YAML_NODES = 100_000
#: cases one suite may expand to (sweeps included)
MAX_CASES = 1000


def fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def regular_file(path: str | Path, what: str, max_bytes: int | None = None) -> Path:
    """``path`` if it is a regular file (of at most ``max_bytes``); one error line otherwise."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SnnbenchError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise SnnbenchError(f"{path}: {exc.strerror or exc}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        kind = ("a directory" if stat_mod.S_ISDIR(st.st_mode) else "a FIFO" if stat_mod.S_ISFIFO(st.st_mode)
                else "a device" if stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode)
                else "a socket" if stat_mod.S_ISSOCK(st.st_mode) else "not a file")
        raise SnnbenchError(f"{path}: not a regular file ({kind}); a {what} must be a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise SnnbenchError(f"{path}: {fmt_bytes(st.st_size)} is larger than the {fmt_bytes(max_bytes)} a {what} "
                            "may be")
    return path


def read_text(path: str | Path, what: str, max_bytes: int = MAX_YAML_BYTES) -> str:
    """A regular file's text (UTF-8), bounded: one error line for anything else."""
    path = regular_file(path, what, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since the stat
        raise SnnbenchError(f"{path}: larger than the {fmt_bytes(max_bytes)} a {what} may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnnbenchError(f"{path}: not a text file (byte {exc.start} is not UTF-8); a {what} is YAML text") from None


def load_yaml(path: str | Path, what: str) -> Any:
    """Read a YAML file within the bounds of the module docstring; one error line for anything else."""
    import yaml

    text = read_text(path, what)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_size(node, f"{path}")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise SnnbenchError(f"{path}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise SnnbenchError(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()


def _children(node) -> list:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root, where: str, limit: int = MAX_YAML_NODES) -> int:
    """How many nodes the document has once every alias is followed, computed without following them more
    than once (a node shared through aliases is counted once per use, its size remembered); more than
    ``limit``, or an alias inside itself, is one error."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            if total > limit:
                raise SnnbenchError(f"{where}: its aliases expand to more than {limit:,} YAML nodes (an alias "
                                    "bomb?); a suite or profile is refused before it is expanded")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        open_.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise SnnbenchError(f"{where}: an alias refers to the node that holds it (a recursive alias)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


# ------------------------------------------------------------------------------------------ memory, disk


def available_memory_bytes() -> int | None:
    """The memory this machine can give a new process now (the kernel's MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: int, subject: str, detail: str = "", limit_bytes: int | None = None,
                 limit_name: str = "", hint: str = "") -> None:
    """One error line when ``need`` bytes (a lower bound) pass ``limit_bytes`` or what the machine has."""
    what = f"{subject} needs at least {fmt_bytes(need)} of memory{f' ({detail})' if detail else ''}"
    tail = f"; {hint}" if hint else ""
    if limit_bytes is not None and need > limit_bytes:
        raise SnnbenchError(f"{what}, more than {limit_name} ({fmt_bytes(limit_bytes)}){tail}")
    available = available_memory_bytes()
    if available is not None and need > available:
        raise SnnbenchError(f"{what}, more than the {fmt_bytes(available)} this machine has available{tail}")


def check_disk(path: str | Path, need: int, subject: str, hint: str = "") -> None:
    """One error line when ``need`` bytes (a lower bound) pass the free space of the disk ``path`` is on."""
    where = Path(path).expanduser().absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return
    if need > free:
        raise SnnbenchError(f"{subject} needs about {fmt_bytes(need)} of disk space, more than the {fmt_bytes(free)} "
                            f"free in {where}{f'; {hint}' if hint else ''}")
