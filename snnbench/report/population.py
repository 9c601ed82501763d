"""The population grid (``suites/population.yaml``): time steps ``T`` against readout neurons per class
``P``. Per runner a table of the ``T x P`` cells (epoch time, test accuracy, time to the target
accuracy) and an inline SVG chart of accuracy against epoch time, one marker per cell (its shape the
population size, its label the time steps, a line joining the cells of one population), every runner's
chart on the same axes (epoch time on a log scale: runners differ by orders of magnitude). A run has a
grid when its training rows span two cells or more and one of them has a population
(``shape["population"]``, recorded for ``P > 1``)."""

from __future__ import annotations

from typing import Any, Callable

from .charts import _svg, _text
from .fmt import e, num, plain, seconds
from .palette import colour

Cell = tuple[int, int]  # (T, P)
#: marker per population size, in increasing P order
MARKERS = ("circle", "square", "triangle", "diamond")
W, H = 300, 220  # px, one chart
LEFT, RIGHT, TOP, BOTTOM = 44, 14, 36, 34  # px of margin around the plot area


def cell_of(row: dict[str, Any]) -> Cell | None:
    """A summary row's ``(T, P)``, or None for a row that is no training cell (a timing-only case)."""
    shape = row.get("shape") or {}
    if "T" not in shape or (row.get("epoch_s") is None and row["status"] == "ok"):
        return None
    return int(shape["T"]), int(shape.get("population", 1))


def grid(rows: list[dict[str, Any]]) -> dict[str, dict[Cell, dict[str, Any]]]:
    """runner -> (T, P) -> its summary row (the first row of a cell, in run order); empty when the rows
    hold no population grid (fewer than two cells, or no population)."""
    out: dict[str, dict[Cell, dict[str, Any]]] = {}
    for r in rows:
        cell = cell_of(r)
        if cell is not None:
            out.setdefault(str(r["runner"]), {}).setdefault(cell, r)
    cells = {c for by_cell in out.values() for c in by_cell}
    if len(cells) < 2 or all(p == 1 for _, p in cells):
        return {}
    return out


def _axes(cells: dict[Cell, dict[str, Any]]) -> tuple[list[int], list[int]]:
    return sorted({t for t, _ in cells}, reverse=True), sorted({p for _, p in cells})


def _cell_html(r: dict[str, Any] | None) -> str:
    if r is None:
        return "<td></td>" * 3
    if r["status"] != "ok":
        tip = f' title="{e(r.get("reason") or "")}"'
        return f'<td class="t muted" colspan="3"{tip}>{e(r["status"])}</td>'
    acc = r.get("accuracy")
    tta = num(r.get("tta_s"), "{:.1f}") or ("not reached" if r.get("curve") else "")
    return (f'<td>{plain(r.get("epoch_s"))}</td><td>{num(None if acc is None else 100 * acc, "{:.1f}%")}</td>'
            f'<td class="nw">{tta}</td>')


def grid_table(runner: str, cells: dict[Cell, dict[str, Any]], target: float) -> str:
    """One runner's cells: a row per ``T`` (longest first), per ``P`` its epoch time, accuracy, time to acc."""
    ts, ps = _axes(cells)
    top = "".join(f'<th colspan="3" style="text-align:center">P = {p}</th>' for p in ps)
    sub = "".join('<th class="nw" title="median epoch time, s">epoch s</th><th class="nw" title="test accuracy">acc'
                  f'</th><th class="nw" title="time to {100 * target:.0f}% test accuracy, compile included, s">'
                  f"to {100 * target:.0f}% s</th>" for _ in ps)
    body = "".join(f"<tr><td>{t}</td>{''.join(_cell_html(cells.get((t, p))) for p in ps)}</tr>"
                   for t in ts)
    return (f'<div><h4>{e(runner)}</h4><div class="box"><table class="population" style="width:auto">'
            f'<thead><tr><th rowspan="2">T</th>{top}</tr><tr>{sub}</tr></thead><tbody>{body}</tbody></table>'
            "</div></div>")


def _marker(kind: str, x: float, y: float, fill: str, title: str) -> str:
    tip = f"<title>{e(title)}</title>"
    style = f'fill="{fill}" fill-opacity="0.85" stroke="#222" stroke-width="0.6"'
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" {style}>{tip}</circle>'
    if kind == "square":
        return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" {style}>{tip}</rect>'
    pts = ([(x, y - 5.5), (x + 5, y + 4), (x - 5, y + 4)] if kind == "triangle"
           else [(x, y - 5.5), (x + 5, y), (x, y + 5.5), (x - 5, y)])
    return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}" {style}>{tip}</polygon>'


def nice_axis(largest: float, ticks: int = 5) -> tuple[float, float]:
    """``(top, step)`` of an axis from 0 that holds ``largest``: a step of 1, 2 or 5 times a power of ten,
    about ``ticks`` of them."""
    import math

    raw = max(largest, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(largest / step - 1e-9), step


def decades(smallest: float, largest: float) -> tuple[int, int]:
    """The powers of ten ``(lo, hi)`` of a log axis that holds ``smallest..largest`` (at least one decade)."""
    import math

    lo = math.floor(math.log10(max(smallest, 1e-9)))
    return lo, max(math.ceil(math.log10(max(largest, 1e-9))), lo + 1)


def _x(seconds_: float, x_axis: tuple[int, int]) -> float:
    """Pixel of an epoch time on the log x axis of decades ``x_axis``."""
    import math

    lo, hi = x_axis
    return LEFT + (W - LEFT - RIGHT) * (math.log10(max(seconds_, 1e-9)) - lo) / (hi - lo)


def _frame(x_axis: tuple[int, int], y_axis: tuple[float, float]) -> str:
    """Axes, ticks and labels of one chart: x epoch time in s on a log axis (decades ``x_axis``), y test
    accuracy in % from 0 (``(top, step)``)."""
    x0, y0, x1, y1 = LEFT, H - BOTTOM, W - RIGHT, TOP
    parts = [f'<path d="M{x0},{y1} V{y0} H{x1}" fill="none" stroke="#888" stroke-width="1"/>']
    y_top, y_step = y_axis
    for power in range(x_axis[0], x_axis[1] + 1):
        fx = _x(10.0 ** power, x_axis)
        parts.append(_text(fx, y0 + 13, plain(10.0 ** power), "middle", 10, "#555"))
        if power > x_axis[0]:
            parts.append(f'<path d="M{fx:.1f},{y1} V{y0}" stroke="#eee" stroke-width="1"/>')
    for i in range(round(y_top / y_step) + 1):
        fy = y0 - (y0 - y1) * i * y_step / y_top
        parts.append(_text(x0 - 4, fy + 3.5, plain(round(i * y_step, 12)), "end", 10, "#555"))
        if i:
            parts.append(f'<path d="M{x0},{fy:.1f} H{x1}" stroke="#eee" stroke-width="1"/>')
    parts.append(_text((x0 + x1) / 2, H - 4, "epoch time, s (log scale)", "middle", 11, "#555"))
    parts.append(_text(4, y1 - 8, "test accuracy, %", size=11, fill="#555"))
    return "".join(parts)


def grid_chart(uid: str, runner: str, cells: dict[Cell, dict[str, Any]], x_axis: tuple[int, int],
               y_axis: tuple[float, float], markers: dict[int, str]) -> str:
    """Accuracy against epoch time for one runner, one marker per cell that trained ('' when none did)."""
    done = {c: r for c, r in cells.items() if r.get("epoch_s") is not None and r.get("accuracy") is not None}
    if not done:
        return ""

    def xy(r: dict[str, Any]) -> tuple[float, float]:
        return (_x(r["epoch_s"], x_axis),
                H - BOTTOM - (H - BOTTOM - TOP) * 100 * r["accuracy"] / y_axis[0])

    c = colour(runner)
    parts = [_frame(x_axis, y_axis), _text(4, 13, runner, weight="bold")]
    for p in sorted({p for _, p in done}):  # a line through one population's cells, shortest T first
        line = [xy(r) for (t, q), r in sorted(done.items()) if q == p]
        if len(line) > 1:
            path = " L".join(f"{x:.1f},{y:.1f}" for x, y in line)
            parts.append(f'<path d="M{path}" fill="none" stroke="{c}" stroke-width="1.2" stroke-opacity="0.6"/>')
    for (t, p), r in sorted(done.items()):
        x, y = xy(r)
        title = f"{runner} T={t} P={p}: epoch {seconds(r['epoch_s'])}, test accuracy {100 * r['accuracy']:.1f}%"
        parts.append(_marker(markers[p], x, y, c, title))
        parts.append(_text(x + 7, y + 3.5, f"T{t}", size=10, fill="#333"))
    return _svg(uid, W, H, f"{runner}: test accuracy against epoch time per T x P cell", "".join(parts))


def _legend(uid: str, markers: dict[int, str]) -> str:
    parts, x = [], 4.0
    for p, kind in markers.items():
        parts += [_marker(kind, x + 5, 11, "#999", f"P = {p}"), _text(x + 14, 15, f"P = {p}", size=11)]
        x += 70
    return _svg(uid, int(x), 22, "marker per population size", "".join(parts))


def _skipped_line(idle: dict[str, dict[Cell, dict[str, Any]]]) -> str:
    """The runners that trained no cell, each with its first reason (the skips section has them all)."""
    if not idle:
        return ""
    items = "; ".join(f"{e(runner)}: {e(next(iter(cells.values())).get('reason') or 'no cell trained')}"
                      for runner, cells in idle.items())
    return f"<p class=muted>No cell trained: {items}</p>"


def population_section(rows: list[dict[str, Any]], target: float, uid: str) -> str:
    """The T x P grid of a run, per runner a table and a chart; '' when the run holds no grid. Runners that
    trained no cell get one line with their reason instead."""
    every = grid(rows)
    found = {n: cells for n, cells in every.items() if any(r["status"] == "ok" for r in cells.values())}
    if not found:
        return _skipped_line(every)
    trained = [r for cells in found.values() for r in cells.values()
               if r.get("epoch_s") and r.get("accuracy") is not None] or [{"epoch_s": 1.0, "accuracy": 0.0}]
    x_axis = decades(min(r["epoch_s"] for r in trained), max(r["epoch_s"] for r in trained))
    y_axis = nice_axis(min(100.0, 100 * max([r["accuracy"] for r in trained] + [0.0]) + 2))
    ps = sorted({p for cells in found.values() for _, p in cells})
    markers = {p: MARKERS[min(i, len(MARKERS) - 1)] for i, p in enumerate(ps)}
    charts = [grid_chart(f"{uid}-pop{i}", runner, cells, x_axis, y_axis, markers)
              for i, (runner, cells) in enumerate(found.items())]
    return ("<h3>Population code: time steps against neurons per class</h3><p class=muted>Each cell is one case: "
            "T time steps over the same input window, a readout of P neurons per class scored by the population "
            "(the spike count for a spiking readout). Epoch time is the median epoch after the first; time to "
            f"{100 * target:.0f}% includes compile. Charts: every runner on the same axes (epoch time log-scaled), "
            "one marker per cell (shape: P; label: T), a line through the cells of one P.</p>"
            + _legend(f"{uid}-pop-legend", markers) + f'<div class="charts">{"".join(charts)}</div>'
            + '<div class="cases grid">' + "".join(grid_table(runner, cells, target) for runner, cells in found.items())
            + "</div>" + _skipped_line({n: c for n, c in every.items() if n not in found}))


def population_markdown(rows: list[dict[str, Any]], target: float, md: Callable[[Any], str]) -> list[str]:
    """The grid as Markdown, text cells through ``md`` (escaping): a line per (runner, T, P) of the runners
    that trained a cell; none when the run holds no grid."""
    found = grid(rows)
    if not found:
        return []
    lines = ["### Population code (T x P)", "",
             f"| runner | T | P | status | epoch s | test acc | time to {100 * target:.0f}% s |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for runner, cells in found.items():
        if not any(r["status"] == "ok" for r in cells.values()):
            continue
        for (t, p), r in sorted(cells.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
            acc = num(None if r.get("accuracy") is None else 100 * r["accuracy"], "{:.1f}%")
            tta = num(r.get("tta_s"), "{:.1f}") or ("not reached" if r.get("curve") else "")
            lines.append(f"| {md(runner)} | {t} | {p} | {md(r['status'])} | {plain(r.get('epoch_s'))} | {acc} "
                         f"| {tta} |")
    return lines + [""]
