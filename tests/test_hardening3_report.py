"""Issue 35, the cases that live in the results table and snnbench/report/: ``report`` on records
holding NaN / inf, ``compare`` flagging NaN / inf / duplicated records instead of printing ``+nan%``,
the CSV neutralising ids that a spreadsheet would run as a formula, and records measured under
interference flagged in the CLI table and the report."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from .test_hardening3 import cli, one_job  # noqa: F401  (one_job: the fixture)




def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]


def _write(run_dir, records):
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))  # NaN -> NaN


@pytest.fixture
def run_copy(tmp_path, one_job):  # noqa: F811
    dst = tmp_path / "runs" / one_job.name
    shutil.copytree(one_job, dst)
    return dst


def _poison(records):
    """Non-finite figures where a diverged or broken run puts them."""
    for r in records:
        if r["metric"] == "fwd_ms":
            r["value"] = float("nan")
            r["stats"] = {**r["stats"], "median": float("nan"), "ci_low": float("nan")}
        elif r["metric"] == "fwdbwd_ms":
            r["value"] = float("inf")
            r["stats"] = {**r["stats"], "median": float("inf"), "ci_high": float("inf")}
        elif r["metric"] in ("epoch_s", "test_acc"):
            r["accuracy"] = float("nan")
            r["loss"] = float("inf")
    return records


def test_report_renders_records_holding_nan_and_inf(tmp_path, run_copy):
    _write(run_copy, _poison(_records(run_copy)))
    p = cli("report", run_copy, "-o", tmp_path / "p.html")
    assert p.returncode == 0 and "Traceback" not in p.stderr + p.stdout, p.stderr[-3000:]
    assert (tmp_path / "p.html").is_file() and (tmp_path / "p.md").is_file()
    assert "nan%" not in (tmp_path / "p.md").read_text().lower()


def test_compare_flags_nan_inf_and_duplicated_records_instead_of_printing_nan_percent(run_copy, one_job):  # noqa: F811
    records = _records(run_copy)
    stats = next(r for r in records if r["metric"] == "epoch_s")
    records.append(dict(stats))  # the same (suite, case, runner, metric) twice
    _write(run_copy, _poison(records))
    p = cli("compare", one_job, run_copy)
    text = p.stdout + p.stderr
    assert "Traceback" not in text and p.returncode in (0, 1, 2)
    assert "nan%" not in text.lower() and "inf%" not in text.lower(), text
    assert "not finite" in text and "duplicate" in text, text


@pytest.mark.parametrize("case_id", ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)"])
def test_the_csv_neutralises_ids_a_spreadsheet_would_run_as_formulas(tmp_path, run_copy, case_id):
    records = _records(run_copy)
    for r in records:
        r["case"] = case_id
    _write(run_copy, records)
    p = cli("report", run_copy, "-o", tmp_path / "p.html")
    assert p.returncode == 0, p.stderr[-3000:]
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(row["case"] == "'" + case_id for row in rows), [row["case"] for row in rows][:3]



def test_interference_is_flagged_in_the_table_and_the_report(tmp_path, run_copy):
    from rich.console import Console

    from snnbench.report.flags import case_flags
    from snnbench.results.summary import results_table, summary_rows

    records = _records(run_copy)
    for r in records:
        if r["metric"] == "fwdbwd_ms":
            r["load"] = {"interference": True, "summary": "other processes used 1.00 of the 2 cores"}
    console = Console(width=250, record=True)
    console.print(results_table(records))
    text = console.export_text()
    assert "ok ~" in text and "other processes used" in text
    rows = summary_rows(records)
    flags = case_flags([r for r in rows if r["case"] == rows[0]["case"]], 0.8)
    assert any(f.kind == "interference" for f in flags)
    _write(run_copy, records)
    p = cli("report", run_copy, "-o", tmp_path / "p.html")
    assert p.returncode == 0 and "its times may be inflated" in (tmp_path / "p.html").read_text()
