"""What a reader must know before trusting a row's place in the ranking: a compiled runner slower
than its eager twin, a time to accuracy that is mostly compile, an accuracy far below the
reference's, an adapter outside its fairness bound, a row measured on another device."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .fmt import parity_text, plain
from .palette import eager_twin

#: time to accuracy counts as dominated by compile when compile is more than this share of it
COMPILE_SHARE = 0.5


@dataclass(frozen=True)
class Flag:
    runner: str
    kind: str  # compiled-slower, compile-dominated, accuracy, fairness, device
    text: str  # one short line, naming the runner
    detail: str = ""  # the longer why, for a tooltip


def case_metric(rows: list[dict[str, Any]]) -> str:
    """The time a case is ranked by: the training epoch where it trained, else fwd+bwd per step."""
    return "epoch_s" if any(r.get("epoch_s") for r in rows) else "fwdbwd_ms"


def _compiled_slower(rows: list[dict[str, Any]], metric: str) -> list[Flag]:
    by_name = {r["runner"]: r for r in rows}
    out = []
    what = "per epoch" if metric == "epoch_s" else "per fwd+bwd step"
    for r in rows:
        eager = by_name.get(eager_twin(r["runner"]) or "")
        if eager and r.get(metric) and eager.get(metric) and r[metric] > eager[metric]:
            out.append(Flag(r["runner"], "compiled-slower",
                            f"{r['runner']} is {r[metric] / eager[metric]:.2f}x slower {what} than eager "
                            f"{eager['runner']}"))
    return out


def _compile_dominated(rows: list[dict[str, Any]], target: float) -> list[Flag]:
    out = []
    for r in rows:
        c, t = r.get("compile_s"), r.get("tta_s")
        if c and t and c > COMPILE_SHARE * t:
            out.append(Flag(r["runner"], "compile-dominated",
                            f"{r['runner']}: {plain(c)} s of its {plain(t)} s to {100 * target:.0f}% is compile "
                            f"({100 * c / t:.0f}%)"))
    return out


def _accuracy(rows: list[dict[str, Any]]) -> list[Flag]:
    out = []
    for r in rows:
        if r.get("accuracy_flag"):
            gap = -100 * (r.get("accuracy_vs_ref") or 0.0)
            why = "declared deviations" if r.get("parity") == "deviates" else "no declared deviation explains it"
            out.append(Flag(r["runner"], "accuracy", f"{r['runner']}: test accuracy {gap:.1f} points below the "
                            f"reference's ({why})", parity_text(r["accuracy_flag"])))
    return out


def _fairness(rows: list[dict[str, Any]]) -> list[Flag]:
    """Rows whose records carry ``fairness: {ratio, bound}`` (adapter time / the framework's own loop)."""
    out = []
    for r in rows:
        f = r.get("fairness") or {}
        if f.get("ratio") is not None and f.get("bound") is not None and f["ratio"] > f["bound"]:
            out.append(Flag(r["runner"], "fairness", f"{r['runner']}: the adapter takes {f['ratio']:.2f}x its "
                            f"framework's own loop (bound {f['bound']:g}x): its time is not the framework's"))
    return out


def _device(rows: list[dict[str, Any]]) -> list[Flag]:
    devices = Counter(r.get("device") for r in rows if r.get("device"))
    if len(devices) < 2:
        return []
    ref = next((r.get("device") for r in rows if r["runner"] == "reference" and r.get("device")), None)
    usual = ref or devices.most_common(1)[0][0]
    return [Flag(r["runner"], "device", f"{r['runner']} ran on {r['device']}, the others on {usual}")
            for r in rows if r.get("device") and r["device"] != usual]


def _interference(rows: list[dict[str, Any]]) -> list[Flag]:
    return [Flag(r["runner"], "interference", f"{r['runner']}: {r['interference']}; its times may be inflated")
            for r in rows if r.get("interference")]


def case_flags(rows: list[dict[str, Any]], target: float) -> list[Flag]:
    """Every flag of one case's rows, in the order a reader should see them."""
    metric = case_metric(rows)
    return (_compiled_slower(rows, metric) + _compile_dominated(rows, target) + _accuracy(rows)
            + _fairness(rows) + _device(rows) + _interference(rows))


def by_runner(flags: list[Flag]) -> dict[str, list[Flag]]:
    """runner -> its flags."""
    out: dict[str, list[Flag]] = {}
    for f in flags:
        out.setdefault(f.runner, []).append(f)
    return out
