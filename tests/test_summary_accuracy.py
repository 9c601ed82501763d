"""The summary flags a runner whose test accuracy falls more than 2 points below the reference's."""

from snnbench.results.summary import results_table, summary_rows


def _records(runner: str, accuracy: float, parity: str = "pass", detail: str = "") -> list[dict]:
    base = {"suite": "shd", "case": "c", "runner": runner, "status": "ok", "shape": {"batch": 8}}
    return [{**base, "metric": "parity", "value": parity, "reason": detail},
            {**base, "metric": "epoch_s", "value": 1.0, "accuracy": accuracy, "extra": {}}]


def test_accuracy_far_below_the_reference_is_flagged_with_the_declared_deviations():
    records = (_records("reference", 0.964, "reference") + _records("close", 0.946)
               + _records("far", 0.837, "deviates", "surrogate is Rockpool's step_pwl") + _records("unexplained", 0.90))
    rows = {r["runner"]: r for r in summary_rows(records)}
    assert "accuracy_flag" not in rows["reference"]
    assert rows["close"]["accuracy_flag"] == ""  # 1.8 points: within the tolerance
    assert abs(rows["far"]["accuracy_vs_ref"] + 0.127) < 1e-9
    assert rows["far"]["accuracy_flag"].startswith("test accuracy 12.7 points below the reference's 96.4%")
    assert "declared deviations: surrogate is Rockpool's step_pwl" in rows["far"]["accuracy_flag"]
    assert rows["unexplained"]["accuracy_flag"].endswith("no declared deviation explains it")


def test_the_results_table_marks_the_flagged_accuracy():
    from io import StringIO

    from rich.console import Console

    records = _records("reference", 0.964, "reference") + _records("far", 0.837, "deviates", "surrogate differs")
    out = StringIO()
    Console(file=out, width=300).print(results_table(records))
    line = next(row for row in out.getvalue().splitlines() if " far " in row)
    assert "83.7% !" in line and "test accuracy 12.7 points below" in line


def test_the_html_report_marks_the_flagged_accuracy_and_says_why():
    from snnbench.report.html import summary_table

    records = _records("reference", 0.964, "reference") + _records("far", 0.837, "deviates", "surrogate differs")
    html = summary_table(summary_rows(records), 0.8)
    assert html.count('class="warn" title="test accuracy 12.7 points below') == 1
    assert "declared deviations: surrogate differs" in html
