"""Read run directories into tidy rows: the one place reports and comparisons get their data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SnnbenchError
from ..results.store import RunDir
from ..results.summary import TIME_METRICS, summary_rows, time_to_accuracy  # noqa: F401 (re-exported)


@dataclass
class Run:
    path: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    skipped_lines: list[tuple[int, str]] = field(default_factory=list)  # lines of records.jsonl not read

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
        manifest, records = rd.manifest(), rd.records()
        runs.append(Run(path=path, manifest=manifest, records=records, skipped_lines=rd.skipped_lines))
    return runs


def _efficiency_columns(r: dict[str, Any]) -> dict[str, Any]:
    eff = r.get("efficiency") if isinstance(r.get("efficiency"), dict) else {}
    ops = eff.get("synops") or {}
    return {"params": eff.get("params"), "footprint_bytes": eff.get("footprint_bytes"),
            "activation_sparsity": eff.get("activation_sparsity"), "synops_dense": ops.get("dense"),
            "synops_effective_acs": ops.get("effective_acs"), "synops_effective_macs": ops.get("effective_macs")}


#: what a spreadsheet reads as the start of a formula in a cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+1+2``), quoted with a
    leading apostrophe; numbers and other text unchanged."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def flat_records(runs: list[Run]) -> list[dict[str, Any]]:
    """Every record with its run name and JSON-ish columns flattened, for CSV export; text cells that a
    spreadsheet would read as formulas are neutralised (:func:`neutral`)."""
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
                **_efficiency_columns(r), "direction": r.get("direction"),
            })
    return [{k: neutral(v) for k, v in row.items()} for row in flat]
