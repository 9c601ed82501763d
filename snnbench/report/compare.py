"""Run-to-run comparison: matched by (suite, case, runner, metric); a change is significant only
when the two bootstrap 95% confidence intervals of the median do not overlap and both sides have
at least :data:`MIN_SAMPLES` samples (a single compile time has no spread to judge by)."""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any

from .fmt import cpu_id_text
from .load import TIME_METRICS, Run

MIN_SAMPLES = 3


@dataclass
class Change:
    key: tuple[str, str, str, str]
    base: float
    new: float
    ratio: float  # new / base
    significant: bool
    regression: bool  # significant, slower, and past the threshold

    @property
    def percent(self) -> float:
        return 100.0 * (self.ratio - 1.0)

    @property
    def verdict(self) -> str:
        """'SLOWER' (past the threshold), 'slower, within threshold', 'faster' or 'no significant change'."""
        if self.regression:
            return "SLOWER"
        if self.significant:
            return "slower, within threshold" if self.ratio > 1 else "faster"
        return "no significant change"


def _finite(stats: dict[str, Any]) -> bool:
    return all(isinstance(stats.get(k), (int, float)) and math.isfinite(stats[k]) for k in ("median", "ci_low", "ci_high"))


def _index(run: Run) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(suite, case, runner, metric) -> stats of each ok time record with finite figures (the first of
    duplicates); :func:`index_problems` says what was left out."""
    out = {}
    for r in run.records:
        if r.get("status") == "ok" and r.get("metric") in TIME_METRICS and r.get("stats"):
            key = (r.get("suite", ""), r["case"], r["runner"], r["metric"])
            if key not in out and _finite(r["stats"]):
                out[key] = r["stats"]
    return out


def index_problems(run: Run) -> list[str]:
    """Time records ``compare`` cannot use: figures that are not finite (NaN, inf), and a (suite,
    case, runner, metric) recorded twice (the first is compared)."""
    seen, problems = set(), []
    for r in run.records:
        if r.get("status") != "ok" or r.get("metric") not in TIME_METRICS or not r.get("stats"):
            continue
        key = (r.get("suite", ""), r["case"], r["runner"], r["metric"])
        name = " / ".join(map(str, key))
        if key in seen:
            problems.append(f"duplicate: {name} recorded more than once in {run.name}; the first is compared")
        elif not _finite(r["stats"]):
            problems.append(f"not finite: {name} in {run.name} (median {r['stats'].get('median')}); left out")
        seen.add(key)
    return problems


def change(key: tuple, sa: dict[str, Any], sb: dict[str, Any], threshold: float) -> Change | None:
    """The change from stats ``sa`` to ``sb`` (each with median, ci_low, ci_high, n): significant only
    when both have :data:`MIN_SAMPLES` samples and their 95% CIs separate; a regression when also
    slower by more than ``threshold``. None when either has no median."""
    if not sa.get("median") or sb.get("median") is None:
        return None
    ratio = sb["median"] / sa["median"]
    enough = min(sa.get("n") or 0, sb.get("n") or 0) >= MIN_SAMPLES
    separate = enough and (sb["ci_low"] > sa["ci_high"] or sb["ci_high"] < sa["ci_low"])
    return Change(key, sa["median"], sb["median"], ratio, separate, separate and ratio > 1.0 + threshold)


def compare(base: Run, new: Run, threshold: float) -> tuple[list[Change], list[tuple], list[tuple]]:
    """Changes for every matched time metric, plus keys only in base and only in new."""
    a, b = _index(base), _index(new)
    changes = [c for key in sorted(set(a) & set(b)) if (c := change(key, a[key], b[key], threshold)) is not None]
    return changes, sorted(set(a) - set(b)), sorted(set(b) - set(a))


def environment_differences(base: Run, new: Run) -> list[str]:
    """What differs between the two runs' recorded environments (CPU, GPUs, Python, library
    versions, allocator): a change there can explain a change in the figures."""
    a, b = base.manifest.get("environment") or {}, new.manifest.get("environment") or {}
    out = []
    for key, label in (("cpu", "CPU"), ("cpu_count", "CPU count"), ("python", "Python")):
        if a.get(key) != b.get(key):
            out.append(f"{label}: {a.get(key)} -> {b.get(key)}")
    ida, idb = a.get("cpu_id"), b.get("cpu_id")
    if ida and idb and ida != idb:  # one model name, another CPU generation or SIMD set
        out.append(f"CPU family/model/SIMD: {cpu_id_text(ida)} -> {cpu_id_text(idb)}")
    gpus_a = [g.get("name") for g in a.get("gpus") or []]
    gpus_b = [g.get("name") for g in b.get("gpus") or []]
    if gpus_a != gpus_b:
        out.append(f"GPU: {', '.join(gpus_a) or 'none'} -> {', '.join(gpus_b) or 'none'}")
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    for name in sorted(set(pa) | set(pb)):
        if name != "snnbench" and pa.get(name) != pb.get(name):
            out.append(f"{name}: {pa.get(name, 'absent')} -> {pb.get(name, 'absent')}")
    alloc_a = (base.manifest.get("allocator") or {}).get("env")
    alloc_b = (new.manifest.get("allocator") or {}).get("env")
    if alloc_a != alloc_b:
        out.append(f"allocator: {alloc_a or 'not recorded'} -> {alloc_b or 'not recorded'}")
    return out


def _devices(run: Run) -> dict[tuple[str, str, str], str]:
    """(suite, case, runner) -> the device its ok records were measured on."""
    return {(r.get("suite", ""), r["case"], r["runner"]): str(r["device"]) for r in run.records
            if r.get("status") == "ok" and r.get("device") and r.get("metric") in TIME_METRICS}


def device_warnings(*runs: Run) -> list[str]:
    """Tables that would compare figures from different devices: a run whose rows come from more
    than one device, and (for two runs) jobs measured on one device in the first, another in the second."""
    out = []
    for run in runs:
        devices = sorted(set(_devices(run).values()))
        if len(devices) > 1:
            out.append(f"{run.name}: its rows come from different devices ({', '.join(devices)}); a ratio between "
                       "them compares the devices, not the frameworks")
    if len(runs) == 2:
        a, b = _devices(runs[0]), _devices(runs[1])
        moved = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        if moved:
            k = moved[0]
            out.append(f"{len(moved)} job(s) ran on another device in {runs[1].name} than in {runs[0].name} "
                       f"(e.g. {' / '.join(k)}: {a[k]} -> {b[k]})")
    return out
