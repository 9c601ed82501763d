"""One framework at two versions in one run (``--versions``): each version's environment made by uv
from the package registry, the runners ``snntorch@0.9.4`` and ``snntorch@1.0.0`` side by side, the
versions recorded, the report's table across versions; a version that cannot be installed is
skipped with the installer's message."""

import json

import pytest

from snnbench.errors import SnnbenchError
from snnbench.runners import versions

from .test_cli import snnbench, tiny_suite  # noqa: F401 (a fixture)


@pytest.mark.parametrize("text, message", [
    ("snntorch", "not a pinned requirement"),
    ("snntorch>=1.0", "not a pinned requirement"),
    ("snntorch==1.0.0,snntorch==1.0.0", "named twice"),
    (",", "names no version"),
])
def test_bad_versions_are_refused(text, message):
    with pytest.raises(SnnbenchError, match=message):
        versions.parse(text)


def test_a_runner_without_the_pinned_framework_is_refused(tiny_suite, small_shd):  # noqa: F811
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--runners", "reference",
                 "--versions", "snntorch==1.0.0")
    assert p.returncode == 2 and "none of the runners (reference) uses snntorch" in p.stderr, p.stderr


def test_version_shades_are_distinct_and_in_the_runners_colour():
    from snnbench.report import palette

    palette.register(["snntorch@0.9.4", "snntorch@1.0.0", "snntorch-compile@1.0.0", "torch"])
    old, new = palette.colour("snntorch@0.9.4"), palette.colour("snntorch@1.0.0")
    assert old != new and palette.colour("snntorch-compile@1.0.0") == new


def _uv_unreachable(reason: str) -> bool:
    return any(s in reason for s in ("dns error", "Failed to fetch", "error sending request", "failed to lookup"))


def test_two_versions_side_by_side(tmp_path, tiny_suite, small_shd):  # noqa: F811
    pytest.importorskip("torch")
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out),
                 "--runners", "snntorch", "--epochs", "1",
                 "--versions", "snntorch==0.9.4,snntorch==1.0.0,snntorch==0.0.0.999")
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    jobs = {r["runner"]: r for r in records if r["metric"] == "job"}
    assert set(jobs) == {"snntorch@0.9.4", "snntorch@1.0.0", "snntorch@0.0.0.999"}
    if _uv_unreachable(jobs["snntorch@1.0.0"]["reason"]):
        pytest.skip(f"the package registry cannot be reached: {jobs['snntorch@1.0.0']['reason']}")
    assert jobs["snntorch@0.0.0.999"]["status"] == "skipped"
    assert "snntorch==0.0.0.999 cannot be installed" in jobs["snntorch@0.0.0.999"]["reason"]
    for version in ("0.9.4", "1.0.0"):
        assert jobs[f"snntorch@{version}"]["status"] == "ok", jobs[f"snntorch@{version}"]
        epoch = next(r for r in records if r["metric"] == "epoch_s" and r["runner"] == f"snntorch@{version}")
        assert epoch["version"] == version  # the framework the worker really imported
        parity = next(r for r in records if r["metric"] == "parity" and r["runner"] == f"snntorch@{version}")
        assert parity["value"] == "pass"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["versions"] == "snntorch==0.9.4,snntorch==1.0.0,snntorch==0.0.0.999"
    page = (tmp_path / "reports" / f"{run_dir.name}.html").read_text()
    assert "Across versions" in page and "snntorch@0.9.4" in page and "snntorch@1.0.0" in page
