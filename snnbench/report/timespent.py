"""Where a run's time went (:mod:`snnbench.results.timebudget`): one stacked bar per runner and one for
the run, coloured by phase group (measurement solid, what measuring costs pale), and the full table of
phases in seconds. Inline SVG at the size it is shown."""

from __future__ import annotations

from typing import Any

from ..results.timebudget import RUN_PHASES, grouped, time_budget
from ..harness.phases import PHASES
from .charts import _svg, _text
from .fmt import e
from .load import Run

#: one colour per phase group: measurement in strong colours, overhead in greys and pale tones
GROUP_COLOURS = {"training": "#1f77b4", "evaluation": "#6baed6", "compile": "#ff7f0e", "timing": "#2ca02c",
                 "parity": "#9467bd", "start-up": "#bdbdbd", "other": "#e0e0e0"}
ROW, LABEL_W, BAR_W, TOP = 22, 150, 460, 22


def _stack(uid: str, label: str, groups: dict[str, float], y: float, scale: float, total: float) -> str:
    out, x = [_text(LABEL_W - 8, y + 15, label, anchor="end")], float(LABEL_W)
    for name, seconds in groups.items():
        w = seconds * scale
        if w <= 0:
            continue
        out.append(f'<rect data-group="{e(name)}" x="{x:.1f}" y="{y + 3:.1f}" width="{max(w, 0.5):.1f}" '
                   f'height="{ROW - 6}" fill="{GROUP_COLOURS[name]}"><title>{e(f"{label}: {name} {seconds:.1f} s")}'
                   f"</title></rect>")
        x += w
    out.append(_text(x + 6, y + 15, f"{total:.0f} s"))
    return "".join(out)


def time_chart(uid: str, budget: dict[str, Any]) -> str:
    """The stacked bars: the run first, then each runner, longest first; one scale per bar group."""
    rows = [("whole run", grouped(budget["run"]["phases"]), budget["run"]["wall_s"])]
    rows += [(r["runner"], grouped(r["phases"]), r["wall_s"]) for r in budget["runners"]]
    legend_y = TOP + ROW * len(rows) + 14
    height = legend_y + 14
    width = LABEL_W + BAR_W + 70
    run_scale = BAR_W / max(rows[0][2], 1e-9)
    job_scale = BAR_W / max([t for _, _, t in rows[1:]] + [1e-9])
    body = [_text(LABEL_W, 14, "seconds by phase (the run on its own scale, the runners on a shared one)", size=11,
                  fill="#555")]
    for i, (label, groups, total) in enumerate(rows):
        body.append(_stack(uid, label, groups, TOP + i * ROW, run_scale if i == 0 else job_scale, total))
    x = float(LABEL_W)
    for name, c in GROUP_COLOURS.items():
        body.append(f'<rect x="{x:.1f}" y="{legend_y - 10}" width="10" height="10" fill="{c}"/>')
        body.append(_text(x + 14, legend_y, name, size=11))
        x += 14 + len(name) * 6.6 + 12
    return _svg(uid, int(max(width, x)), height, "where the run's time went, by phase", "".join(body))


def _table(budget: dict[str, Any]) -> str:
    order = [p for p in [*PHASES, *RUN_PHASES] if budget["run"]["phases"].get(p)]
    help_ = {**PHASES, **RUN_PHASES}
    head = "".join(f'<th title="{e(help_[p])}">{e(p)}</th>' for p in order)
    rows = [("whole run", budget["run"])] + [(r["runner"], r) for r in budget["runners"]]
    body = []
    for label, r in rows:
        cells = "".join(f"<td>{r['phases'].get(p, 0.0):.1f}</td>" if r["phases"].get(p) else "<td>-</td>"
                        for p in order)
        ratio = f"{r['overhead']:.2f}x" if r.get("overhead") else "-"
        body.append(f'<tr><td class="t">{e(label)}</td><td>{r["wall_s"]:.1f}</td><td>{r["measured_s"]:.1f}</td>'
                    f"<td>{ratio}</td>{cells}</tr>")
    return (f'<div class="box"><table class="sortable"><thead><tr><th class="t">runner</th><th>wall s</th>'
            f'<th title="compile, training, evaluation and the timed samples">measured s</th>'
            f'<th title="wall over measured">wall / measured</th>{head}</tr></thead><tbody>{"".join(body)}'
            "</tbody></table></div>")


def time_section(run: Run, anchor: str) -> str:
    """The section, or '' for a run whose jobs did not record their phases."""
    budget = time_budget(run.records, run.manifest)
    if budget is None:
        return ""
    r = budget["run"]
    lead = (f"{r['wall_s'] / 60:.1f} min in all, of which {r['measured_s'] / 60:.1f} min measurement (compile, "
            f"epochs, evaluation, timed samples): wall / measurement {r['overhead']:.2f}x." if r.get("overhead")
            else f"{r['wall_s'] / 60:.1f} min in all.")
    if not r["complete_timeline"]:
        lead += " (This run's manifest has no timeline: the time between jobs is not shown.)"
    return (f'<h3 id="{e(anchor)}-time">Where the time went</h3><p>{e(lead)}</p>'
            f"{time_chart(f'{anchor}-time-chart', budget)}<details><summary>Every phase, seconds</summary>"
            f"{_table(budget)}</details>")


