"""The headline charts, drawn as inline SVG at the size they are shown (12 px text): per case, a
horizontal bar per runner, fastest first, labelled with its time, its multiple of the fastest, its
test-accuracy change against the reference and its parity verdict; beside it the time to the
target accuracy with the compile time drawn pale. Every bar carries ``data-runner``, its colour
(``data-colour``) and style (``data-style``: solid, or hatched for a compiled twin)."""

from __future__ import annotations

from typing import Any

from .fmt import e, parity_text, plain, points, seconds
from .palette import colour, is_twin

FONT = 12  # px, data text
HEAD = 11  # px, column headers
ROW = 22  # px per runner
TOP = 26  # px above the first bar: the column headers
BAR_W = 250  # px of the longest bar plus its value label
CHAR = 6.9  # px per character of 12 px system-ui text, a generous estimate
PARITY_CLASS = {"pass": "#1a7f37", "reference": "#666", "deviates": "#9a6700", "inconclusive": "#9a6700",
                "skipped": "#666"}


def _name_width(rows: list[dict[str, Any]]) -> int:
    return int(max([len(str(r["runner"])) for r in rows] + [8]) * CHAR) + 12


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = FONT, fill: str = "#222",
          weight: str = "normal", title: str = "") -> str:
    tip = f"<title>{e(title)}</title>" if title else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
            f' font-weight="{weight}">{tip}{e(text)}</text>')


def _patterns(uid: str, rows: list[dict[str, Any]]) -> str:
    """A hatch pattern per colour of the compiled twins among ``rows``."""
    out = []
    for c in sorted({colour(r["runner"]) for r in rows if is_twin(r["runner"])}):
        out.append(f'<pattern id="{uid}-{c[1:]}" patternUnits="userSpaceOnUse" width="6" height="6" '
                   f'patternTransform="rotate(45)"><rect width="6" height="6" fill="{c}" fill-opacity="0.3"/>'
                   f'<rect width="3" height="6" fill="{c}"/></pattern>')
    return f"<defs>{''.join(out)}</defs>" if out else ""


def _bar(uid: str, runner: str, x: float, y: float, w: float, h: float, pale: bool = False,
         title: str = "") -> str:
    c = colour(runner)
    twin = is_twin(runner)
    fill = f"url(#{uid}-{c[1:]})" if twin else c
    opacity = ' fill-opacity="0.35"' if pale else ""
    tip = f"<title>{e(title)}</title>" if title else ""
    return (f'<rect class="bar" data-runner="{e(runner)}" data-colour="{c}" '
            f'data-style="{"hatched" if twin else "solid"}{"-pale" if pale else ""}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{max(w, 1.0):.1f}" height="{h:.1f}" fill="{fill}"{opacity} stroke="{c}" stroke-width="1">'
            f"{tip}</rect>")


def _svg(uid: str, width: int, height: int, label: str, body: str) -> str:
    return (f'<svg class="chart" id="{uid}" role="img" aria-label="{e(label)}" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="system-ui,-apple-system,Segoe UI,Roboto,sans-serif">'
            f"{body}</svg>")


def _acc_cell(r: dict[str, Any]) -> tuple[str, str]:
    """The accuracy column's text and colour: the reference's own accuracy, else the change in points."""
    if r.get("accuracy") is None:
        return "", "#222"
    if r["runner"] == "reference" or r.get("accuracy_vs_ref") is None:
        return f"{100 * r['accuracy']:.1f}%", "#222"
    return points(r["accuracy_vs_ref"]), "#b42318" if r.get("accuracy_flag") else "#222"


def rank_chart(uid: str, case: str, rows: list[dict[str, Any]], metric: str, flags: dict[str, list] | None = None
               ) -> str:
    """Runners of one case by ``metric`` (epoch_s or fwdbwd_ms), fastest first. ``rows``: the case's
    summary rows that have the metric; ``flags``: runner -> its :class:`~.flags.Flag` list (a mark)."""
    rows = sorted(rows, key=lambda r: r[metric])
    flags = flags or {}
    name_w = _name_width(rows)
    unit, head = ("s", "epoch time (median)") if metric == "epoch_s" else ("ms", "fwd+bwd per step (median)")
    with_acc = any(r.get("accuracy") is not None for r in rows)
    x_mult = name_w + BAR_W + 44
    x_acc = x_mult + (62 if with_acc else 0)
    x_par = x_acc + 12
    width = x_par + 104
    height = TOP + ROW * len(rows) + 4
    fastest, longest = rows[0][metric], max(r[metric] for r in rows)
    scale = (BAR_W - 64) / longest
    parts = [_patterns(uid, rows),
             _text(name_w, 14, f"{head}, {unit}", size=HEAD, fill="#555"),
             _text(x_mult, 14, "x fastest", "end", HEAD, "#555", title="time / the fastest runner's time"),
             _text(x_par, 14, "parity", size=HEAD, fill="#555", title="the parity gate's verdict against the "
                                                                       "reference (details below)")]
    if with_acc:
        parts.append(_text(x_acc, 14, "acc Δ", "end", HEAD, "#555", title="test accuracy change against the "
                           "reference, in points (the reference's row: its own test accuracy)"))
    for i, r in enumerate(rows):
        y = TOP + i * ROW
        mid = y + ROW / 2 + FONT * 0.35
        w = r[metric] * scale
        value = f"{plain(r[metric])} {unit}"
        parts.append(_text(name_w - 6, mid, str(r["runner"]), "end", weight="bold" if i == 0 else "normal"))
        parts.append(_bar(uid, r["runner"], name_w, y + 3, w, ROW - 6, title=f"{r['runner']}: {value}"))
        parts.append(_text(name_w + w + 4, mid, value))
        parts.append(_text(x_mult, mid, f"{r[metric] / fastest:.2f}x", "end"))
        if with_acc:
            text, fill = _acc_cell(r)
            parts.append(_text(x_acc, mid, text, "end", fill=fill, title=parity_text(r.get("accuracy_flag") or "")))
        verdict = str(r.get("parity") or "-")
        parts.append(_text(x_par, mid, verdict, fill=PARITY_CLASS.get(verdict, "#b42318")))
        mine = flags.get(r["runner"])
        if mine:
            parts.append(_text(x_par + 88, mid, "⚠", fill="#b54708", weight="bold",
                               title="; ".join(f.text for f in mine)))
    label = f"{case}: {head}, fastest first"
    return _svg(uid, width, height, label, "".join(parts))


def tta_chart(uid: str, case: str, rows: list[dict[str, Any]], target: float) -> str:
    """Time to ``target`` test accuracy, compile included, per runner in ``rows``' order (so that its
    rows line up with :func:`rank_chart`'s); the compile part pale, the first to get there in bold.
    '' when no runner has a curve."""
    if not any(r.get("curve") for r in rows):
        return ""
    name_w = _name_width(rows)
    bar_w = 200
    width = name_w + bar_w + 118
    height = TOP + ROW * len(rows) + 4
    longest = max([r["tta_s"] for r in rows if r.get("tta_s")] + [1e-9])
    scale = (bar_w - 8) / longest
    head = f"time to {100 * target:.0f}% test accuracy, compile included, s"
    parts = [_patterns(uid, rows), _text(name_w, 14, head, size=HEAD, fill="#555")]
    first = min((r["tta_s"] for r in rows if r.get("tta_s")), default=None)
    for i, r in enumerate(rows):
        y = TOP + i * ROW
        mid = y + ROW / 2 + FONT * 0.35
        parts.append(_text(name_w - 6, mid, str(r["runner"]), "end",
                           weight="bold" if first is not None and r.get("tta_s") == first else "normal"))
        t, c = r.get("tta_s"), r.get("compile_s") or 0.0
        if not t:
            parts.append(_text(name_w, mid, "not reached" if r.get("curve") else "-", fill="#666"))
            continue
        cw = min(c, t) * scale
        if cw > 0:
            parts.append(_bar(uid, r["runner"], name_w, y + 3, cw, ROW - 6, pale=True,
                              title=f"{r['runner']}: compile {plain(c)} s"))
        parts.append(_bar(uid, r["runner"], name_w + cw, y + 3, t * scale - cw, ROW - 6,
                          title=f"{r['runner']}: training {plain(t - c)} s"))
        label = seconds(t) + (f" ({plain(c)} compile)" if c >= 0.05 * t else "")
        parts.append(_text(name_w + t * scale + 4, mid, label))
    return _svg(uid, width, height, f"{case}: {head}", "".join(parts))
