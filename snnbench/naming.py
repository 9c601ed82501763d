"""One rule for every file or folder name made from user text, and for every list of names a command takes.

* A case id must be printable text: not empty, no control characters (NUL, newline, tab ...), no
  surrounding whitespace, at most :data:`MAX_ID` characters (:func:`check_id`).
* A name that becomes a file name inside a run directory (a case id, a runner) goes through
  :func:`file_part`, which is injective: letters, digits, ``_``, ``.`` (not first) and single ``-`` stay,
  every other byte becomes ``%XX``. So ``a/b`` and ``a_b`` never share a file, no name escapes its folder,
  and ``--`` (the separator between the parts of a job's file names) never appears inside a part.
* A name that becomes a folder or file of its own outside a run directory (a suite, a machine class) must
  already be a plain name (:data:`PLAIN`): no separator, no ``.`` or ``..``, nothing hidden.
* A list given on the command line (``--runners``, ``--cases``, ``--suites``, ``--frameworks``) that is given
  must name something, and nothing twice (:func:`parse_list`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .errors import SnnbenchError

#: a plain name: a single path component that is never '.', '..' or hidden
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_ID = 200
#: a file name part longer than this is shortened (with a hash of the whole, so it stays unique)
MAX_PART_BYTES = 120
_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
#: characters that cannot be part of a name anyone types: control, format and separator characters
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def check_id(text: object, where: str) -> str:
    """``text`` if it is a usable case id, else one error naming ``where``."""
    if not isinstance(text, str) or not text.strip():
        raise SnnbenchError(f"{where}: an id must not be empty")
    if len(text) > MAX_ID:
        raise SnnbenchError(f"{where}: an id may have at most {MAX_ID} characters, this one has {len(text)}")
    bad = next((c for c in text if unicodedata.category(c) in _BAD_CATEGORIES), None)
    if bad is not None:
        raise SnnbenchError(f"{where}: the id {text!r} holds the control character {bad!r}; ids are printable text")
    if text != text.strip():
        raise SnnbenchError(f"{where}: the id {text!r} starts or ends with whitespace")
    return text


def file_part(text: str) -> str:
    """``text`` as one part of a file name, injectively (module docstring): ``tiny-b32`` stays ``tiny-b32``,
    ``a/b`` becomes ``a%2Fb``, ``a--b`` becomes ``a-%2Db``, ``..`` becomes ``%2E.``. A part never starts or
    ends with ``-`` nor holds ``--``, so ``<case>--<runner>`` splits one way only."""
    raw = text.encode("utf-8")
    out: list[str] = []
    for i, byte in enumerate(raw):
        c = chr(byte)
        keep = c in _KEEP or (c == "." and i > 0) or \
            (c == "-" and 0 < i < len(raw) - 1 and out[-1] != "-" and not out[-1].startswith("%"))
        out.append(c if keep else f"%{byte:02X}")
    part = "".join(out)
    if len(part) > MAX_PART_BYTES:  # '~' is never produced above: the shortened form cannot collide
        part = part[:MAX_PART_BYTES - 17].rstrip("-") + "~" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return part


def job_file(case_id: str, runner: str, suffix: str = "") -> str:
    """The file name of a (case, runner) job's log, weights or NIR file: ``<case>--<runner><suffix>``."""
    return f"{file_part(case_id)}--{file_part(runner)}{suffix}"


def check_plain_name(text: object, flag: str) -> str:
    """``text`` if it is a plain name (:data:`PLAIN`), else one error naming the option it came from."""
    if not isinstance(text, str) or not PLAIN.fullmatch(text):
        raise SnnbenchError(f"{flag} {text!r} is not a plain name (letters, digits, '.', '_', '-', starting with a "
                            "letter or digit): it names a folder and a page, and must stay inside their parents")
    return text


def parse_list(text: str | None, flag: str) -> list[str] | None:
    """A comma-separated list from the command line: None when the option was not given; given, it must
    name at least one item, have no empty entry, and name nothing twice."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise SnnbenchError(f"{flag} {text!r} names nothing; leave the option out for the default")
    if "" in items:
        raise SnnbenchError(f"{flag} {text!r} has an empty entry")
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise SnnbenchError(f"{flag}: {item!r} is named twice")
        seen.add(item)
    return items
