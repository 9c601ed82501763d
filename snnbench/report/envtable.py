"""One environment table for every run of a page: a column per run, a row per fact, and the facts
that can change a figure (machine, Python, packages, commit, uncommitted changes) highlighted where
the runs differ."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

from .fmt import cpu_id_text, e, short_data
from .load import Run

VERSION = re.compile(r"^\d+(\.\d+)+")
ALIASES = {"haiku": "dm-haiku"}  # a runner's name for a package -> the package list's


def _env(run: Run) -> dict[str, Any]:
    return run.manifest.get("environment") or {}


def _gpus(run: Run) -> str:
    return ", ".join(f"{g.get('name')} (driver {g.get('driver_version')})" for g in _env(run).get("gpus") or []) \
        or "none"


def _allocator(run: Run) -> str:
    env = (run.manifest.get("allocator") or {}).get("env") or {}
    return " ".join(f"{k}={v}" for k, v in env.items()) or "not recorded"


def _git(run: Run, key: str) -> Any:
    return (_env(run).get("git") or {}).get(key)


#: (label, value of a run, whether a difference between runs can change a figure)
FACTS: list[tuple[str, Callable[[Run], str], bool]] = [
    ("suite", lambda r: f"{r.manifest.get('suite')}{' (quick)' if r.manifest.get('quick') else ''}", False),
    ("command", lambda r: str(r.manifest.get("command", "")), False),
    ("started", lambda r: str(r.manifest.get("started", "")), False),
    ("finished", lambda r: f"{r.manifest.get('finished', '')} ({r.manifest.get('status', '')})", False),
    ("data", lambda r: "; ".join(short_data(d) for d in r.manifest.get("data") or []) or "-", False),
    ("CPU", lambda r: str(_env(r).get("cpu")), True),
    ("CPU family, model, SIMD", lambda r: cpu_id_text(_env(r).get("cpu_id")), True),
    ("cores", lambda r: str(_env(r).get("cpu_count")), True),
    ("CPU governor", lambda r: str(_env(r).get("cpu_governor") or "n/a"), True),
    ("memory", lambda r: f"{(_env(r).get('memory_bytes') or 0) / 2**30:.1f} GiB", True),
    ("GPU", _gpus, True),
    ("Python", lambda r: str(_env(r).get("python")), True),
    ("platform", lambda r: str(_env(r).get("platform")), True),
    ("allocator", _allocator, True),
    ("thread settings", lambda r: " ".join(f"{k}={v}" for k, v in (_env(r).get("thread_env") or {}).items()) or "-",
     True),
    ("commit", lambda r: str(_git(r, "commit") or "unknown")[:12], True),
    ("uncommitted changes", lambda r: {True: "yes", False: "no"}.get(_git(r, "dirty"), "unknown"), True),
]


#: Facts that older runs did not record: their placeholder is never highlighted as a difference.
UNRECORDED = {"CPU family, model, SIMD": "not recorded"}


def recorded_versions(run: Run) -> dict[str, str]:
    """Framework versions the runners recorded (``framework``/``version`` and version-like entries of
    ``runner_extra``), for the packages the environment's own list does not name."""
    listed = set(_env(run).get("packages") or {})
    out: dict[str, str] = {}
    for r in run.records:
        pairs = [(r.get("framework"), r.get("version"))]
        pairs += [(k, v) for k, v in (r.get("runner_extra") or {}).items() if isinstance(v, str)]
        for name, version in pairs:
            name = ALIASES.get(str(name), name)
            if name and isinstance(version, str) and VERSION.match(version) and name not in listed:
                out.setdefault(str(name), version)
    return out


def _row(label: str, values: list[str], matters: bool, note: str = "", absent: str = "") -> str:
    """One fact: a single cell across the runs where they agree, else a cell per run, those that differ
    from the most common value highlighted when the fact can change a figure (``absent``: a value
    meaning 'not measured here', never a difference)."""
    n = len(values)
    flag = label == "uncommitted changes"
    present = [v for v in values if v != absent] or values
    common = Counter(present).most_common(1)[0][0]
    differs = matters and len(set(present)) > 1
    if len(set(values)) == 1 and not (flag and common == "yes"):
        return f'<tr><th class="t">{e(label)}{note}</th><td class="t" colspan="{n}">{e(values[0])}</td></tr>'
    cells = []
    for v in values:
        marked = (differs and v != common and v != absent) or (flag and v == "yes")
        cells.append(f'<td class="t{" diff" if marked else ""}">{e(v)}</td>')
    cls = ' class="differs"' if differs or (flag and "yes" in values) else ""
    return f'<tr{cls}><th class="t">{e(label)}{note}</th>{"".join(cells)}</tr>'


def environment_table(runs: list[Run]) -> str:
    """The runs' environments side by side (one column per run)."""
    rows = [_row(label, [get(r) for r in runs], matters, absent=UNRECORDED.get(label, ""))
            for label, get, matters in FACTS
            if not (label in ("CPU governor", "thread settings") and all(get(r) in ("n/a", "-") for r in runs))]
    packages = sorted({p for r in runs for p in _env(r).get("packages") or {}})
    for p in packages:
        rows.append(_row(p, [str((_env(r).get("packages") or {}).get(p, "absent")) for r in runs], True))
    recorded = [recorded_versions(r) for r in runs]
    for name in sorted({n for rec in recorded for n in rec}):
        rows.append(_row(name, [rec.get(name, "-") for rec in recorded], True, ' <span class="muted">*</span>', "-"))
    head = "".join(f'<th class="t">{e(str(r.manifest.get("suite") or ""))}<br><span class="muted">{e(r.name)}'
                   "</span></th>" for r in runs)
    note = ('<p class="muted">Highlighted: a fact that can change a figure and differs between the runs, and a tree '
            "with uncommitted changes. * : a version the runners recorded for a package the environment's package "
            "list does not name.</p>") if recorded and any(recorded) else (
        '<p class="muted">Highlighted: a fact that can change a figure and differs between the runs, and a tree '
        "with uncommitted changes.</p>")
    return (f'<div class="box"><table class="env"><thead><tr><th class="t">run</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{note}')
