"""Figures for the report, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

PALETTE = ["#1b6ca8", "#e07b39", "#3a9e5c", "#c23b5b", "#7d5ba6", "#8c6d31", "#4a4a4a", "#d4a017"]
KNOWN = ["reference", "snntorch", "norse", "torch", "torch-compile", "spyx"]


def plain(text: Any) -> str:
    """User text (case ids, runner names) for a label: a '$' printed as '$', never read as mathtext."""
    return str(text).replace("$", r"\$")


def colour(runner: str) -> str:
    """One colour per runner, the same in every plot."""
    i = KNOWN.index(runner) if runner in KNOWN else len(KNOWN) + sum(map(ord, runner))
    return PALETTE[i % len(PALETTE)]


def _figure(width: float = 7.0, height: float = 3.6, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), dpi=110)
    for ax in (axes if ncols > 1 else [axes]):
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig, axes


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def bars(rows: list[dict[str, Any]], metric: str, title: str, ylabel: str, log: bool = False) -> bytes | None:
    """One bar per (case, runner) with the 95% CI of the median as error bar, where present."""
    data = [r for r in rows if r.get(metric) is not None]
    if not data:
        return None
    fig, ax = _figure(max(5.0, 0.6 * len(data) + 2), 3.6)
    values = [r[metric] for r in data]
    lo, hi = [], []
    for r, v in zip(data, values):
        ci = r.get(f"{metric}_ci") or (None, None)
        lo.append(v - ci[0] if ci[0] is not None else 0.0)
        hi.append(ci[1] - v if ci[1] is not None else 0.0)
    colours = [colour(r["runner"]) for r in data]
    ax.bar(range(len(data)), values, yerr=[lo, hi], capsize=3, color=colours)
    _tick_labels(ax, data)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    return _png(fig)


def accuracy_curves(rows: list[dict[str, Any]], case: str) -> bytes | None:
    data = [r for r in rows if r["case"] == case and r.get("curve")]
    if not data:
        return None
    fig, (ax1, ax2) = _figure(9.0, 3.4, ncols=2)
    for i, r in enumerate(data):
        epochs = [p["epoch"] for p in r["curve"]]
        acc = [100 * p["test_acc"] for p in r["curve"]]
        t = [p["elapsed_s"] for p in r["curve"]]
        c = colour(r["runner"])
        ax1.plot(epochs, acc, marker="o", ms=3, color=c, label=plain(r["runner"]))
        ax2.plot(t, acc, marker="o", ms=3, color=c, label=plain(r["runner"]))
    ax1.set_xlabel("epoch")
    ax2.set_xlabel("training time (s, compile excluded)")
    ax2.set_xscale("log")
    for ax in (ax1, ax2):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(f"{plain(case)}: accuracy", fontsize=10)
    return _png(fig)


def accuracy_vs_time(rows: list[dict[str, Any]], case: str, target: float) -> bytes | None:
    """Test accuracy against wall-clock training time, compile included, every runner of ``case`` on
    one axis: the runner whose line crosses the target first reaches that accuracy first."""
    data = [r for r in rows if r["case"] == case and r.get("curve")]
    if not data:
        return None
    fig, ax = _figure(8.5, 3.8)
    for r in data:
        start = r.get("compile_s") or 0.0  # the first step waits for the compile
        t = [start + p["elapsed_s"] for p in r["curve"]]
        ax.plot(t, [100 * p["test_acc"] for p in r["curve"]], marker="o", ms=3, color=colour(r["runner"]),
                label=plain(r["runner"]))
    ax.set_xscale("log")
    ax.axhline(100 * target, color="#888", linestyle="--", linewidth=1, label=f"target {100 * target:.0f}%")
    ax.set_xlabel("wall-clock training time (s, compile included, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the lines
    ax.set_title(f"{plain(case)}: who reaches an accuracy first", fontsize=10)
    return _png(fig)


def _tick_labels(ax, data: list[dict[str, Any]]) -> None:
    """Runner names (with the case when there are several), slanted once they would touch."""
    several = len({r["case"] for r in data}) > 1
    labels = [plain(f"{r['runner']}\n{r['case']}" if several else r["runner"]) for r in data]
    slant = several or len(data) > 6
    ax.set_xticks(range(len(data)), labels, fontsize=7 if slant else 8, rotation=30 if slant else 0,
                  ha="right" if slant else "center", rotation_mode="anchor" if slant else "default")


PHASES = ("fwd", "fwdbwd", "gemm_floor", "train")


def memory_bars(rows: list[dict[str, Any]]) -> bytes | None:
    """Peak memory of each phase (each from a reset peak), one group of bars per (case, runner):
    the device's peak where the device has memory of its own, else the host's resident peak."""
    data = [r for r in rows if any((r.get("memory") or {}).get(p) for p in PHASES)]
    if not data:
        return None
    device = any(m.get("device_peak_bytes") for r in data for m in r["memory"].values())
    key = "device_peak_bytes" if device else "host_peak_bytes"
    fig, ax = _figure(max(6.0, 1.2 * len(data) + 2), 4.0)
    width = 0.8 / len(PHASES)
    for j, phase in enumerate(PHASES):
        values = [((r["memory"].get(phase) or {}).get(key) or 0) / 2**30 for r in data]
        ax.bar([i + (j - 1.5) * width for i in range(len(data))], values, width, color=PALETTE[j], label=phase)
    _tick_labels(ax, data)
    ax.set_ylabel(f"peak {'device' if device else 'host (RSS)'} memory (GiB)")
    ax.set_title("peak memory per phase (each from a reset peak)", fontsize=10, pad=22)
    # above the axes, not over the bars
    ax.legend(fontsize=7, ncol=len(PHASES), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _png(fig)


def scaling(points: list[dict[str, Any]], x_key: str, fixed: tuple[str, ...], title: str,
            y_key: str = "median", ylabel: str = "fwd+bwd time (ms)") -> bytes | None:
    """Forward+backward time against ``x_key`` on log-log axes with CI error bars: one panel per
    combination of the ``fixed`` shape fields, one line per runner. None if ``x_key`` takes fewer
    than two values (nothing to scale over).

    ``points``: dicts with runner, metric, n, T, batch, median, ci_low, ci_high.
    """
    pts = [p for p in points if p["metric"] == "fwdbwd_ms"]
    if len({p[x_key] for p in pts}) < 2:
        return None
    panels = sorted({tuple(p[k] for k in fixed) for p in pts})[:6]
    several = len({p.get("group") for p in pts}) > 1  # e.g. one line per neuron type and runner
    series = sorted({(p["runner"], p.get("group") if several else None) for p in pts}, key=str)
    fig, axes = _figure(4.2 * min(3, len(panels)), 3.6 * ((len(panels) + 2) // 3), ncols=1)
    fig.clf()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    for j, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, j + 1)
        groups = sorted({g for _, g in series}, key=str)
        styles = ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1)), (0, (5, 5))]
        for runner, group in series:
            line = sorted((p for p in pts if p["runner"] == runner and (group is None or p.get("group") == group)
                           and tuple(p[k] for k in fixed) == panel), key=lambda p: p[x_key])
            if not line:
                continue
            xs, ys = [p[x_key] for p in line], [p[y_key] for p in line]
            err = ([[y - p["ci_low"] for y, p in zip(ys, line)], [p["ci_high"] - y for y, p in zip(ys, line)]]
                   if y_key == "median" else None)
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, color=colour(runner),
                        linestyle=styles[groups.index(group) % len(styles)],
                        label=plain(runner if group is None else f"{runner} {group}"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x_key)
        ax.set_ylabel(ylabel)
        ax.set_title(plain(", ".join(f"{k}={v}" for k, v in zip(fixed, panel))), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        if j == 0:
            ax.legend(fontsize=6 if several else 7, ncol=2 if several else 1)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def data_parallel(points: list[dict[str, Any]]) -> bytes | None:
    """Training throughput against devices, one line per (runner, scaling mode): fixed global batch
    (strong scaling) and fixed per-device batch (weak scaling); the ideal linear line dotted.

    ``points``: :func:`snnbench.results.summary.data_parallel_scaling` rows.
    """
    pts = [p for p in points if p.get("samples_per_s")]
    if len({p["devices"] for p in pts}) < 2:
        return None
    fig, ax = _figure(6.0, 3.6)
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
    ax.set_title("data-parallel throughput (dotted: linear scaling from one device)", fontsize=10)
    ax.legend(fontsize=7)
    return _png(fig)


def precision(points: list[dict[str, Any]]) -> bytes | None:
    """Per runner, bfloat16 and float16 against its own float32: training-epoch speed-up (left; the
    fwd+bwd speed-up where a case has no epoch) and test-accuracy change in points (right).

    ``points``: :func:`snnbench.results.summary.precision_rows` rows.
    """
    pts = [p for p in points if p.get("epoch_s_speedup") or p.get("fwdbwd_ms_speedup")]
    if not pts:
        return None
    fig, (speed, acc) = _figure(9.0, 3.6, ncols=2)
    labels = [plain(f"{p['runner']}\n{p['case']}") for p in pts]
    values = [p.get("epoch_s_speedup") or p["fwdbwd_ms_speedup"] for p in pts]
    hatches = ["//" if p["dtype"] == "float16" else "" for p in pts]
    for i, (v, p, h) in enumerate(zip(values, pts, hatches)):
        speed.bar(i, v, color=colour(p["runner"]), hatch=h, edgecolor="white")
    speed.axhline(1.0, color="#444", linewidth=0.8)
    speed.set_xticks(range(len(pts)), labels, rotation=60, ha="right", fontsize=6)
    speed.set_ylabel("speed-up over own float32")
    speed.set_title("speed-up (epoch, else fwd+bwd); hatched: float16", fontsize=9)
    trained = [p for p in pts if p.get("accuracy_change") is not None]
    for i, p in enumerate(trained):
        acc.bar(i, p["accuracy_change"], color=colour(p["runner"]), hatch="//" if p["dtype"] == "float16" else "",
                edgecolor="white")
    acc.axhline(0.0, color="#444", linewidth=0.8)
    acc.set_xticks(range(len(trained)), [plain(f"{p['runner']}\n{p['case']}") for p in trained], rotation=60,
                   ha="right", fontsize=6)
    acc.set_ylabel("test accuracy change (points)")
    acc.set_title("accuracy vs own float32", fontsize=9)
    return _png(fig)


def sparsity_by_layer(rows: list[dict[str, Any]]) -> bytes | None:
    """Activation sparsity of each spiking layer, one group of bars per (case, runner)."""
    data = [r for r in rows if r.get("sparsity_layers")]
    if not data:
        return None
    n_layers = max(len(r["sparsity_layers"]) for r in data)
    fig, ax = _figure(max(5.0, 0.5 * len(data) * n_layers + 2), 3.6)
    width = 0.8 / n_layers
    for k in range(n_layers):
        xs = [i + (k - (n_layers - 1) / 2) * width for i, r in enumerate(data) if k < len(r["sparsity_layers"])]
        ys = [r["sparsity_layers"][k] for r in data if k < len(r["sparsity_layers"])]
        ax.bar(xs, ys, width, label=f"spiking layer {k + 1}", alpha=0.4 + 0.6 * (k + 1) / n_layers, color="C0")
    _tick_labels(ax, data)
    ax.set_ylim(0, 1.15)  # room for the legend above the bars
    ax.set_ylabel("zero outputs / outputs")
    ax.set_title("activation sparsity by spiking layer", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncol=n_layers, frameon=False)
    return _png(fig)
