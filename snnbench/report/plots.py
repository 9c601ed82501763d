"""Figures for the report, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

PALETTE = ["#1b6ca8", "#e07b39", "#3a9e5c", "#c23b5b", "#7d5ba6", "#8c6d31", "#4a4a4a", "#d4a017"]


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
    labels = [f"{r['runner']}\n{r['case']}" if len({d['case'] for d in data}) > 1 else r["runner"] for r in data]
    values = [r[metric] for r in data]
    lo, hi = [], []
    for r, v in zip(data, values):
        ci = r.get(f"{metric}_ci") or (None, None)
        lo.append(v - ci[0] if ci[0] is not None else 0.0)
        hi.append(ci[1] - v if ci[1] is not None else 0.0)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(data))]
    ax.bar(range(len(data)), values, yerr=[lo, hi], capsize=3, color=colours)
    ax.set_xticks(range(len(data)), labels, fontsize=8)
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
        c = PALETTE[i % len(PALETTE)]
        ax1.plot(epochs, acc, marker="o", ms=3, color=c, label=r["runner"])
        ax2.plot(t, acc, marker="o", ms=3, color=c, label=r["runner"])
    ax1.set_xlabel("epoch")
    ax2.set_xlabel("training time (s, compile excluded)")
    ax2.set_xscale("log")
    for ax in (ax1, ax2):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(f"{case}: accuracy", fontsize=10)
    return _png(fig)


def memory_bars(rows: list[dict[str, Any]]) -> bytes | None:
    data = [r for r in rows if r.get("peak_rss_bytes")]
    if not data:
        return None
    fig, ax = _figure(max(5.0, 0.6 * len(data) + 2), 3.4)
    x = range(len(data))
    ax.bar(x, [r["peak_rss_bytes"] / 2**30 for r in data], color=PALETTE[0], label="host RSS")
    dev = [(r.get("peak_device_bytes") or 0) / 2**30 for r in data]
    if any(dev):
        ax.bar(x, dev, color=PALETTE[1], alpha=0.8, width=0.4, label="device")
        ax.legend(fontsize=8)
    ax.set_xticks(list(x), [f"{r['runner']}\n{r['case']}" for r in data], fontsize=8)
    ax.set_ylabel("peak memory (GiB)")
    ax.set_title("peak memory per case", fontsize=10)
    return _png(fig)


def scaling(points: list[dict[str, Any]], x_key: str, title: str) -> bytes | None:
    """Time against ``x_key`` on log-log axes, one line per (runner, metric), CI error bars.

    ``points``: dicts with runner, metric, x_key, median, ci_low, ci_high.
    """
    if not points:
        return None
    fig, ax = _figure(7.0, 4.0)
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        series.setdefault((p["runner"], p["metric"]), []).append(p)
    for i, ((runner, metric), pts) in enumerate(sorted(series.items())):
        pts.sort(key=lambda p: p[x_key])
        xs = [p[x_key] for p in pts]
        ys = [p["median"] for p in pts]
        err = [[y - p["ci_low"] for y, p in zip(ys, pts)], [p["ci_high"] - y for y, p in zip(ys, pts)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, color=PALETTE[i % len(PALETTE)],
                    linestyle="-" if metric == "fwdbwd_ms" else "--", label=f"{runner} {metric}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("time (ms)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)
