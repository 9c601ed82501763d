"""Turn records into one row per (case, runner): the table printed at the end of a run."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collapse metric records into one row per (case, runner), in first-seen order."""
    grouped: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    for r in records:
        row = grouped[(r["case"], r["runner"])]
        row.setdefault("case", r["case"])
        row.setdefault("runner", r["runner"])
        row.setdefault("status", "ok")
        row.setdefault("reason", "")
        if r.get("metric") == "parity":
            continue  # carried by the benchmark records themselves
        if r["status"] != "ok":
            row["status"], row["reason"] = r["status"], r.get("reason", "")
        if r["status"] == "ok" and r.get("metric") not in (None, "run"):
            row[r["metric"]] = r.get("value")
            if r.get("floor_ratio"):
                row[f"{r['metric']}_floor"] = r["floor_ratio"]
            if r["metric"] == "epoch_s":
                row["accuracy"] = r.get("accuracy")
                row["first_epoch_s"] = (r.get("extra") or {}).get("first_epoch_s")
                row["peak_rss_bytes"] = r.get("peak_rss_bytes")
                row["parity"] = r.get("parity")
    return list(grouped.values())


def results_table(records: list[dict[str, Any]]):
    """A rich Table of :func:`rows`, with each runner's epoch-time ratio to the reference."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("case", "runner", "status", "compile s", "epoch s", "x ref", "fwd ms", "fwd+bwd ms",
                  "/floor", "test acc", "peak RSS", "parity", "reason", title="results")
    all_rows = rows(records)
    ref = {r["case"]: r.get("epoch_s") for r in all_rows if r["runner"] == "reference"}
    for r in all_rows:
        ratio = "-"
        if r.get("epoch_s") and ref.get(r["case"]):
            ratio = f"{r['epoch_s'] / ref[r['case']]:.2f}"
        table.add_row(
            escape(r["case"]), escape(r["runner"]), r["status"], _num(r.get("compile_s"), 2),
            _num(r.get("epoch_s"), 3), ratio,
            _num(r.get("fwd_ms"), 2), _num(r.get("fwdbwd_ms"), 2), _num(r.get("fwdbwd_ms_floor"), 2),
            f"{100 * r['accuracy']:.1f}%" if r.get("accuracy") is not None else "-",
            f"{r['peak_rss_bytes'] / 2**30:.2f} GiB" if r.get("peak_rss_bytes") else "-",
            (r.get("parity") or {}).get("status", "-"),
            escape((r.get("reason") or "")[:80]),
        )
    return table


def _num(v: Any, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
