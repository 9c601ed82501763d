"""The maintainer's view (``snnbench report RUN... --baseline RUN...``): each run against an earlier
run of the same suite. Per row the change of its ranking time, significant exactly when
:func:`snnbench.report.compare.compare` calls it so; per run what changed in the environment, and
per row a framework version that changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SnnbenchError
from .compare import Change, compare, environment_differences
from .fmt import e, plain
from .load import Run

#: the slowdown that counts as a regression (snnbench compare's default threshold)
THRESHOLD = 0.05
VERDICT_CLASS = {"SLOWER": "bad", "slower, within threshold": "warn", "faster": "ok", "no significant change": "muted"}


@dataclass
class Baseline:
    run: Run  # the earlier run
    changes: dict[tuple[str, str, str], Change] = field(default_factory=dict)  # (case, runner, metric) ->
    environment: list[str] = field(default_factory=list)  # compare.environment_differences
    versions: dict[str, str] = field(default_factory=dict)  # runner -> its framework version in the baseline
    only_base: list[tuple] = field(default_factory=list)


def _versions(run: Run) -> dict[str, str]:
    """runner -> 'framework version' as its records name them."""
    out: dict[str, str] = {}
    for r in run.records:
        if r.get("runner") and r.get("version") and r.get("metric") != "nir":
            out.setdefault(r["runner"], f"{r.get('framework') or ''} {r['version']}".strip())
    return out


def match(runs: list[Run], baselines: list[Run]) -> dict[str, Baseline]:
    """run name -> its baseline: the (last) baseline run of the same suite. A baseline whose suite
    no run has is an error (it would silently compare nothing)."""
    by_suite = {str(b.manifest.get("suite")): b for b in baselines}
    suites = {str(r.manifest.get("suite")) for r in runs}
    for suite, b in by_suite.items():
        if suite not in suites:
            raise SnnbenchError(f"--baseline {b.path}: suite {suite!r} is not among the runs reported")
    out = {}
    for run in runs:
        base = by_suite.get(str(run.manifest.get("suite")))
        if base is None:
            continue
        changes, only_base, _ = compare(base, run, THRESHOLD)
        out[run.name] = Baseline(run=base, changes={c.key[1:]: c for c in changes},
                                 environment=environment_differences(base, run), versions=_versions(base),
                                 only_base=only_base)
    return out


def change_cell(b: Baseline | None, row: dict[str, Any], metric: str) -> tuple[str, float | None]:
    """The change column's HTML and sort value for ``row``'s ``metric`` against the baseline."""
    c = b.changes.get((row["case"], row["runner"], metric)) if b else None
    if c is None:
        return ('<span class="muted">new</span>' if b and row.get(metric) else ""), None
    title = (f"{b.run.name}: {plain(c.base)} -> {plain(c.new)}; {c.verdict} (significant only when both 95% CIs "
             f"separate, with at least 3 samples each; slowdown threshold {100 * THRESHOLD:g}%)")
    return (f'<span class="{VERDICT_CLASS[c.verdict]}" title="{e(title)}">{c.percent:+.1f}%'
            f'{"" if c.verdict == "no significant change" else " " + e(c.verdict)}</span>'), c.percent


def version_note(b: Baseline | None, row: dict[str, Any]) -> str:
    """' (was X)' when the row's framework version differs from the baseline's."""
    if not b:
        return ""
    now = f"{row.get('framework') or ''} {row.get('version') or ''}".strip()
    was = b.versions.get(row["runner"])
    if was and now and was != now:
        return f' <mark title="framework version changed since the baseline">(was {e(was)})</mark>'
    return ""


def notice(run: Run, b: Baseline | None) -> str:
    """Above a run's table: which run it is compared with, and what changed in the environment."""
    if not b:
        return ""
    env = "".join(f"<li>{e(line)}</li>" for line in b.environment)
    gone = f"; {len(b.only_base)} measurement(s) only in the baseline" if b.only_base else ""
    text = (f'<div class="baseline"><p><b>Against the baseline {e(b.run.name)}</b>: the change column is this run\'s '
            f"time against the baseline's (significant only when both 95% CIs separate, at least 3 samples each; "
            f"SLOWER past {100 * THRESHOLD:g}%){e(gone)}.</p>")
    if env:
        text += ('<p class="warn">The environment changed since the baseline; a change may come from here, not '
                 f"from the code:</p><ul>{env}</ul>")
    return text + "</div>"
