"""One framework across versions (``snnbench run --versions``): the versions of each runner side by
side, each change against the oldest version with its significance (the rule of ``snnbench compare``),
and a chart of the figures across versions. Runners ``<name>@<version>`` are the variants."""

from __future__ import annotations

from html import escape as e
from typing import Any

from .charts import rank_chart
from .compare import change
from .fmt import plain, points

METRICS = (("epoch_s", "epoch s"), ("fwdbwd_ms", "fwd+bwd ms"), ("fwd_ms", "fwd ms"))
#: a slowdown past this is marked, as ``compare``'s default threshold
THRESHOLD = 0.05


def _version_key(version: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(version), version)
    except InvalidVersion:
        return (1, None, version)


def groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(case, runner) -> its version rows, oldest first; only runners seen at two versions or more."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        name = str(r.get("runner", ""))
        if "@" in name:
            out.setdefault((r["case"], name.split("@", 1)[0]), []).append(r)
    return {k: sorted(v, key=lambda r: _version_key(str(r["runner"]).split("@", 1)[1]))
            for k, v in out.items() if len(v) > 1}


def _stats(r: dict[str, Any], metric: str) -> dict[str, Any]:
    low, high = r.get(f"{metric}_ci") or (None, None)
    return {"median": r.get(metric), "ci_low": low, "ci_high": high, "n": r.get(f"{metric}_n")}


def _change_cell(first: dict[str, Any], r: dict[str, Any], metric: str) -> str:
    if r is first:
        return '<td class="muted">base</td>'
    c = change((r["case"], r["runner"], metric), _stats(first, metric), _stats(r, metric), THRESHOLD)
    if c is None or c.base is None or c.new is None:
        return "<td>-</td>"
    cls = "bad" if c.regression else "good" if c.significant and c.ratio < 1 else ""
    return f'<td class="{cls}" title="{e(c.verdict)}">{c.percent:+.1f}% {e(c.verdict)}</td>'


def version_table(versions: list[dict[str, Any]]) -> str:
    first = versions[0]
    shown = [(m, label) for m, label in METRICS if any(r.get(m) is not None for r in versions)]
    head = "".join(f"<th>{e(label)}</th><th>change</th>" for _, label in shown)
    body = ""
    for r in versions:
        cells = "".join(f"<td>{plain(r.get(m))}</td>{_change_cell(first, r, m)}" for m, _ in shown)
        acc = f"{100 * r['accuracy']:.1f}%" if r.get("accuracy") is not None else "-"
        delta = points(r.get("accuracy") - first.get("accuracy")) if r is not first and r.get("accuracy") is not None \
            and first.get("accuracy") is not None else ""
        body += (f"<tr><td>{e(str(r['runner']))}</td><td>{e(str(r.get('version') or '-'))}</td><td>{e(r['status'])}"
                 f"</td>{cells}<td>{acc} {e(delta)}</td><td>{e(str(r.get('parity') or '-'))}</td></tr>")
    return (f"<table><thead><tr><th>runner</th><th>framework version</th><th>status</th>{head}<th>test acc</th>"
            f"<th>parity</th></tr></thead><tbody>{body}</tbody></table>")


def versions_section(rows: list[dict[str, Any]], uid: str) -> str:
    """Every runner seen at several versions: a table and a chart per case; '' when there is none."""
    found = groups(rows)
    if not found:
        return ""
    parts = ["<h3>Across versions</h3><p>Each version of a framework ran in its own environment on the same "
             "stack (<code>snnbench run --versions</code>). A change is significant only when the two 95% "
             f"confidence intervals separate, as <code>snnbench compare</code> decides; a slowdown past "
             f"{100 * THRESHOLD:.0f}% is marked.</p>"]
    for i, ((case, runner), versions) in enumerate(found.items()):
        metric = "epoch_s" if any(r.get("epoch_s") for r in versions) else "fwdbwd_ms"
        parts.append(f"<h4>{e(runner)} on {e(case)}</h4>{version_table(versions)}")
        measured = [r for r in versions if r.get(metric) is not None]
        if len(measured) > 1:
            parts.append(f'<div class="charts">{rank_chart(f"{uid}-v{i}", case, measured, metric)}</div>')
    return "".join(parts)

