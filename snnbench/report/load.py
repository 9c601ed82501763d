"""Read run directories into tidy rows: the one place reports and comparisons get their data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SnnbenchError
from ..results.store import RunDir

#: time metrics, where lower is better and a comparison may flag a slowdown
TIME_METRICS = ("epoch_s", "compile_s", "fwd_ms", "fwdbwd_ms")


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name


def load_runs(paths: list[str | Path]) -> list[Run]:
    if not paths:
        raise SnnbenchError("name at least one run directory")
    runs = []
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            raise SnnbenchError(f"run directory {path} does not exist")
        rd = RunDir.open(path)
        runs.append(Run(path=path, manifest=rd.manifest(), records=rd.records()))
    return runs


def time_to_accuracy(record: dict[str, Any], target: float, compile_s: float | None) -> float | None:
    """Seconds of training (compile included) until test accuracy first reaches ``target``."""
    for point in (record.get("extra") or {}).get("curve", []):
        if point["test_acc"] >= target:
            return point["elapsed_s"] + (compile_s or 0.0)
    return None


def summary_rows(run: Run, target_acc: float) -> list[dict[str, Any]]:
    """One row per (suite, case, runner) with the figures a report table shows."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in run.records:
        key = (r.get("suite", ""), r["case"], r["runner"])
        row = rows.setdefault(key, {"run": run.name, "suite": key[0], "case": key[1], "runner": key[2],
                                    "status": "ok", "reason": "", "framework": r.get("framework"),
                                    "version": r.get("version"), "mode": r.get("mode")})
        for k in ("framework", "version", "mode"):
            row[k] = row.get(k) or r.get(k)
        metric = r.get("metric")
        if metric == "parity":
            row["parity"] = r.get("value") if r["status"] == "ok" else r["status"]
            row["parity_detail"] = r.get("reason", "")
            continue
        if r["status"] != "ok":
            row["status"], row["reason"] = r["status"], r.get("reason", "")
            continue
        if metric in TIME_METRICS:
            stats = r.get("stats") or {}
            if r.get("peak_rss_bytes"):
                row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, r["peak_rss_bytes"])
            row[metric] = r.get("value")
            row[f"{metric}_ci"] = (stats.get("ci_low"), stats.get("ci_high"))
            row[f"{metric}_cv"] = stats.get("cv")
            if r.get("floor_ratio") is not None:
                row[f"{metric}_floor"] = r["floor_ratio"]
        if metric == "epoch_s":
            row["accuracy"] = r.get("accuracy")
            row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, r.get("peak_rss_bytes") or 0) or None
            row["peak_device_bytes"] = r.get("peak_device_bytes")
            row["curve"] = (r.get("extra") or {}).get("curve", [])
            row["_epoch_record"] = r
        if r.get("parity") and "parity" not in row:
            row["parity"] = r["parity"].get("status")
    for row in rows.values():
        rec = row.pop("_epoch_record", None)
        row["tta_s"] = time_to_accuracy(rec, target_acc, row.get("compile_s")) if rec else None
    out = list(rows.values())
    refs = {(r["suite"], r["case"]): r for r in out if r["runner"] == "reference"}
    for row in out:
        ref = refs.get((row["suite"], row["case"]))
        for metric in ("epoch_s", "fwdbwd_ms"):
            if ref and row.get(metric) and ref.get(metric):
                row[f"{metric}_vs_ref"] = row[metric] / ref[metric]
    return out


def flat_records(runs: list[Run]) -> list[dict[str, Any]]:
    """Every record with its run name and JSON-ish columns flattened, for CSV export."""
    flat = []
    for run in runs:
        for r in run.records:
            stats = r.get("stats") or {}
            shape = r.get("shape") or {}
            flat.append({
                "run": run.name, "suite": r.get("suite"), "case": r.get("case"), "runner": r.get("runner"),
                "metric": r.get("metric"), "status": r.get("status"), "reason": r.get("reason"),
                "framework": r.get("framework"), "version": r.get("version"), "mode": r.get("mode"),
                "device": r.get("device"), "dtype": r.get("dtype"), "unit": r.get("unit"),
                "value": r.get("value") if not isinstance(r.get("value"), (dict, list)) else None,
                "median": stats.get("median"), "ci_low": stats.get("ci_low"), "ci_high": stats.get("ci_high"),
                "q1": stats.get("q1"), "q3": stats.get("q3"), "min": stats.get("min"), "cv": stats.get("cv"),
                "n": stats.get("n"), "accuracy": r.get("accuracy"), "loss": r.get("loss"),
                "peak_rss_bytes": r.get("peak_rss_bytes"), "peak_device_bytes": r.get("peak_device_bytes"),
                "T": shape.get("T"), "batch": shape.get("batch"), "network": shape.get("network"),
                "parity": (r.get("parity") or {}).get("status") if isinstance(r.get("parity"), dict) else None,
            })
    return flat
