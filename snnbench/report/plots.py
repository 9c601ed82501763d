"""Figures for the report, drawn with matplotlib and returned as SVG text at the size they are shown
(points: 9 pt text is 12 px on screen): legends outside the data, plain tick labels, one colour per
runner (:mod:`.palette`), a compiled twin dashed in its eager twin's colour. Every function returns
None when there is nothing worth a plot (a single point, a flat line)."""

from __future__ import annotations

import io
import re
from typing import Any

from .palette import SHADES, colour, linestyle

FONT_PT = 9  # 12 px on screen
WIDTH_IN = 7.2  # 691 px: fits an 800 px window without shrinking


def plain(text: Any) -> str:
    """User text (case ids, runner names) for a label: a '$' printed as '$', never read as mathtext."""
    return str(text).replace("$", r"\$")


def _figure(width: float = WIDTH_IN, height: float = 3.4, ncols: int = 1, nrows: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "snnbench", "font.size": FONT_PT,
                         "axes.titlesize": FONT_PT + 1, "legend.fontsize": FONT_PT - 0.5,
                         "xtick.labelsize": FONT_PT - 0.5, "ytick.labelsize": FONT_PT - 0.5,
                         "font.family": "sans-serif"})
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def _svg(fig) -> str:
    """The figure as SVG text (no date, stable ids), its outer tags only."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return _slim(buf.getvalue())


def _slim(text: str) -> str:
    """matplotlib's SVG without what the page does not need (about half its bytes): the XML prologue,
    the metadata block, indentation, ids nothing refers to, no-op rotations, the font fallback list
    on every text, digits past a hundredth of a point."""
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"\n\s*", "\n", text)
    text = re.sub(r' id="(?:figure|patch|axes|matplotlib\.axis|xtick|ytick|line2d|text|legend)_\d+"', "", text)
    text = re.sub(r' transform="rotate\(-0 [\d.]+ [\d.]+\)"', "", text)
    text = re.sub(r"font-family: [^;\"]+", "font-family: sans-serif", text)
    return re.sub(r"(\d+\.\d\d)\d+", r"\1", text)


def _plain_log_axis(axis) -> None:
    """Log-scale tick labels as plain numbers (1, 2, 5, 10, 20, ...), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=20))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _data_ticks(axis, values) -> None:
    """Ticks at the values the data has (a sweep's n or T), as plain numbers, when there are few."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    values = sorted(set(values))
    if len(values) > 8:
        return _plain_log_axis(axis)
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _legend_right(ax, **kw) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0, **kw)


def accuracy_vs_time(rows: list[dict[str, Any]], case: str, target: float) -> str | None:
    """Test accuracy against wall-clock training time, compile included, every runner of ``case`` on
    one axis: the runner whose line crosses the target first reaches that accuracy first. None
    unless some runner has two or more points (one point per runner is a table, not a line) and
    the accuracies move by a point or more."""
    data = [r for r in rows if r["case"] == case and r.get("curve")]
    accs = [p["test_acc"] for r in data for p in r["curve"]]
    if not any(len(r["curve"]) >= 2 for r in data) or max(accs) - min(accs) < 0.01:
        return None  # one point per runner, or a flat line: the table says it
    fig, axes = _figure(WIDTH_IN, 3.4)
    ax = axes[0][0]
    for r in sorted(data, key=lambda r: r["runner"]):
        start = r.get("compile_s") or 0.0  # the first step waits for the compile
        t = [start + p["elapsed_s"] for p in r["curve"]]
        ax.plot(t, [100 * p["test_acc"] for p in r["curve"]], marker="o", ms=3, color=colour(r["runner"]),
                linestyle=linestyle(r["runner"]), label=plain(r["runner"]))
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.axhline(100 * target, color="#888", linestyle=":", linewidth=1)
    ax.text(0.005, 100 * target, f"target {100 * target:.0f}%", transform=ax.get_yaxis_transform(), va="bottom",
            color="#666")
    ax.set_xlabel("wall-clock training time, compile included (s, log scale)")
    ax.set_ylabel("test accuracy (%)")
    _legend_right(ax)
    ax.set_title(f"{plain(case)}: who reaches an accuracy first", loc="left")
    return _svg(fig)


def scaling(points: list[dict[str, Any]], x_key: str, fixed: tuple[str, ...], title: str,
            y_key: str = "median", ylabel: str = "fwd+bwd time (ms)") -> str | None:
    """``y_key`` against ``x_key`` on log-log axes: one panel per combination of the ``fixed`` shape
    fields, one line per runner (and neuron group, as line style). None if ``x_key`` takes fewer
    than two values (nothing to scale over).

    ``points``: dicts with runner, metric, n, T, batch, median, ci_low, ci_high.
    """
    pts = [p for p in points if p["metric"] == "fwdbwd_ms"]
    if len({p[x_key] for p in pts}) < 2:
        return None
    panels = sorted({tuple(p[k] for k in fixed) for p in pts})[:6]
    groups = sorted({p.get("group") for p in pts}, key=str)
    several = len(groups) > 1
    series = sorted({(p["runner"], p.get("group") if several else None) for p in pts}, key=str)
    cols = min(2, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = _figure(WIDTH_IN if cols == 1 else 9.0, 3.0 * rows_n, ncols=cols, nrows=rows_n)
    styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)), (0, (5, 5))]
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for j, ax in enumerate(axes.flat):
        if j >= len(panels):
            ax.set_visible(False)
            continue
        for runner, group in series:
            line = sorted((p for p in pts if p["runner"] == runner and (group is None or p.get("group") == group)
                           and tuple(p[k] for k in fixed) == panels[j]), key=lambda p: p[x_key])
            if not line:
                continue
            k = groups.index(group) if several else 0
            ax.plot([p[x_key] for p in line], [p[y_key] for p in line], color=colour(runner),
                    linestyle=styles[k % len(styles)] if several else linestyle(runner),
                    marker=markers[k % len(markers)], ms=4,
                    label=plain(runner if group is None else f"{runner} {group}"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        _data_ticks(ax.xaxis, [p[x_key] for p in pts])
        _plain_log_axis(ax.yaxis)
        ax.set_xlabel(x_key)
        ax.set_ylabel(ylabel)
        where = plain(", ".join(f"{k}={v}" for k, v in zip(fixed, panels[j])))
        ax.set_title(f"{title} ({where})" if len(panels) == 1 else where, loc="left")
    _legend_right(axes.flat[min(cols, len(panels)) - 1])
    if len(panels) > 1:
        fig.suptitle(title, x=0.01, ha="left")
    return _svg(fig)


def data_parallel(points: list[dict[str, Any]]) -> str | None:
    """Training throughput against devices, one line per (runner, scaling mode): fixed global batch
    (strong scaling) and fixed per-device batch (weak scaling); the ideal linear line dotted.

    ``points``: :func:`snnbench.results.summary.data_parallel_scaling` rows.
    """
    pts = [p for p in points if p.get("samples_per_s")]
    if len({p["devices"] for p in pts}) < 2:
        return None
    fig, axes = _figure(WIDTH_IN, 3.4)
    ax = axes[0][0]
    styles = {"global": "-", "per-device": "--"}
    for runner in sorted({p["runner"] for p in pts}):
        mine = [p for p in pts if p["runner"] == runner]
        for mode, key in (("global", "global_batch"), ("per-device", "per_device_batch")):
            for size in sorted({p[key] for p in mine}):
                line = sorted((p for p in mine if p[key] == size), key=lambda p: p["devices"])
                if len(line) < 2 or line[0]["devices"] != 1:
                    continue
                xs, ys = [p["devices"] for p in line], [p["samples_per_s"] for p in line]
                ax.plot(xs, ys, marker="o", ms=3, color=colour(runner), linestyle=styles[mode],
                        label=plain(f"{runner}, {mode} batch {size}"))
                ax.plot(xs, [ys[0] * x for x in xs], color=colour(runner), linestyle=":", alpha=0.4)
    ax.set_xscale("log", base=2)
    ticks = sorted({p["devices"] for p in pts})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("devices")
    ax.set_ylabel("training samples / s")
    ax.set_title("data-parallel throughput (dotted: linear scaling from one device)", loc="left")
    if ax.get_legend_handles_labels()[0]:
        _legend_right(ax)
    return _svg(fig)


def _hbars(ax, labels: list[str], values: list[float], runners: list[str], hatches: list[str]) -> None:
    """Horizontal bars, first label on top, each in its runner's colour."""
    ys = list(range(len(values)))[::-1]
    for y, v, runner, h in zip(ys, values, runners, hatches):
        ax.barh(y, v, color=colour(runner), hatch=h, edgecolor="white", height=0.7)
    ax.set_yticks(ys, labels)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")


def precision(points: list[dict[str, Any]]) -> str | None:
    """Per runner, bfloat16 and float16 against its own float32: training-epoch speed-up (left; the
    fwd+bwd speed-up where a case has no epoch) and test-accuracy change in points (right).

    ``points``: :func:`snnbench.results.summary.precision_rows` rows.
    """
    pts = [p for p in points if p.get("epoch_s_speedup") or p.get("fwdbwd_ms_speedup")]
    if not pts:
        return None
    trained = [p for p in pts if p.get("accuracy_change") is not None]
    fig, axes = _figure(WIDTH_IN + (2.4 if trained else 0), 0.8 + 0.28 * len(pts), ncols=2 if trained else 1)
    speed = axes[0][0]
    labels = [plain(f"{p['runner']} {p['dtype']} ({p['case']})") for p in pts]
    _hbars(speed, labels, [p.get("epoch_s_speedup") or p["fwdbwd_ms_speedup"] for p in pts],
           [p["runner"] for p in pts], ["//" if p["dtype"] == "float16" else "" for p in pts])
    speed.axvline(1.0, color="#444", linewidth=0.8)
    speed.set_xlabel("speed-up over own float32 (epoch, else fwd+bwd)")
    speed.set_title("speed-up; hatched: float16", loc="left")
    if trained:
        acc = axes[0][1]
        _hbars(acc, [plain(f"{p['runner']} {p['dtype']}") for p in trained], [p["accuracy_change"] for p in trained],
               [p["runner"] for p in trained], ["//" if p["dtype"] == "float16" else "" for p in trained])
        acc.axvline(0.0, color="#444", linewidth=0.8)
        acc.set_xlabel("test accuracy change (points)")
        acc.set_title("accuracy vs own float32", loc="left")
    return _svg(fig)


def sparsity_by_layer(rows: list[dict[str, Any]]) -> str | None:
    """Activation sparsity of each spiking layer, one group of bars per (case, runner). None when
    every value lies within 5 points of the others (a flat plot says nothing the table does not)."""
    data = [r for r in rows if r.get("sparsity_layers")]
    values = [s for r in data for s in r["sparsity_layers"]]
    if not data or max(values) - min(values) < 0.05:
        return None
    n_layers = max(len(r["sparsity_layers"]) for r in data)
    fig, axes = _figure(WIDTH_IN, 0.8 + 0.22 * len(data) * n_layers)
    ax = axes[0][0]
    height = 0.8 / n_layers
    ys = list(range(len(data)))[::-1]
    for k in range(n_layers):
        kept = [(y, r) for y, r in zip(ys, data) if k < len(r["sparsity_layers"])]
        ax.barh([y + (k - (n_layers - 1) / 2) * -height for y, _ in kept], [r["sparsity_layers"][k] for _, r in kept],
                height, color=SHADES[k % len(SHADES)], label=f"spiking layer {k + 1}")
    several = len({r["case"] for r in data}) > 1
    ax.set_yticks(ys, [plain(f"{r['runner']} ({r['case']})" if several else r["runner"]) for r in data])
    ax.set_xlim(0, 1)
    ax.set_xlabel("zero outputs / outputs")
    ax.set_title("activation sparsity by spiking layer", loc="left")
    _legend_right(ax)
    return _svg(fig)
