"""Reports from real (small) runs: the HTML page, its escaping, the browser, and run comparison."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from snnbench.harness.timing import summarize

from .conftest import tiny_network_yaml
from .test_cli import snnbench

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, small_shd):
    base = tmp_path_factory.mktemp("report-run")
    suite = base / "tiny.yaml"
    suite.write_text(yaml.safe_dump({
        "suite": "tiny", "runners": ["reference", "torch"],
        "defaults": {"time_steps": 32, "channels": 32, "batch": 32, "epochs": 3, "lr": 0.01},
        "network": tiny_network_yaml(), "cases": [{"id": "tiny <b>case</b>"}],
        "quick": {"train_samples": 128, "test_samples": 64},
    }))
    runners = "reference,torch" if shutil.which("python") and _has_torch() else "reference"
    p = snnbench("run", "--suite", str(suite), "--quick", "--data-dir", str(small_shd), "--out", str(base / "r"),
                 "--runners", runners, env_extra={"SNNBENCH_CACHE": str(base / "cache")})
    assert p.returncode == 0, p.stderr + p.stdout
    (rd,) = (base / "r").iterdir()
    return rd


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _inject(run, tmp_path, name, factor, reason=None, jitter=0.0, environment=None):
    """A copy of ``run`` whose timing samples are scaled by ``factor`` (each also by a seeded random
    factor within ``1 +- jitter``; stats recomputed), optionally with another environment."""
    import numpy as np

    rng = np.random.default_rng(7)
    out = tmp_path / name
    shutil.copytree(run, out)
    lines = []
    for line in (out / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("samples") and r.get("stats"):
            r["samples"] = [s * factor * rng.uniform(1 - jitter, 1 + jitter) for s in r["samples"]]
            r["stats"] = summarize(r["samples"])
            r["value"] = r["stats"]["median"]
        if reason and r.get("metric") == "fwd_ms":
            r["status"], r["reason"] = "failed", reason
        lines.append(json.dumps(r))
    (out / "records.jsonl").write_text("\n".join(lines) + "\n")
    if environment:
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["environment"] = {**manifest["environment"], **environment}
        (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_report_writes_html_md_csv(run_dir, tmp_path):
    out = tmp_path / "rep" / "page.html"
    p = snnbench("report", str(run_dir), "-o", str(out))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    assert page.count("<table") >= 3 and '<meta name="viewport"' in page
    assert "tiny &lt;b&gt;case&lt;/b&gt;" in page and "<b>case</b>" not in page
    body = re.sub(r"http://www\.w3\.org/[\w/.-]*", "", page.split("<body>")[1])  # SVG's namespace names
    assert "reference" in page and "Environment" in page and "http://" not in body and "https://" not in body
    assert "data:image/png" not in page  # drawn as SVG, at the size shown
    # first after the title: the machine, the data, the commit, the contents, then the ranking charts
    top = page.split('<section class="answer-run"')[0]
    assert all(f"<dt>{k}</dt>" in top for k in ("machine", "data", "commit")) and 'class="toc"' in top
    answer = page.split('<section class="answer-run"')[1].split("</section>")[0]
    assert "Fastest:" not in answer or "parity" in answer.lower()
    assert answer.count('<svg class="chart"') == 2  # epoch time ranked, and time to accuracy beside it
    assert 'data-runner="reference"' in answer and "x fastest" in answer and "parity" in answer
    assert 'alt="accuracy vs time' in page and "data:image/svg+xml," in page
    md = out.with_suffix(".md").read_text()
    assert "| case | runner |" in md and "reference" in md
    import pandas as pd

    df = pd.read_csv(out.with_suffix(".csv"))
    assert {"run", "case", "runner", "metric", "median", "ci_low", "status"} <= set(df.columns)
    assert (df["metric"] == "epoch_s").any()


def test_report_escapes_framework_messages(run_dir, tmp_path):
    bad = _inject(run_dir, tmp_path, "bad-run", 1.0, reason='<script>alert("x")</script> & <img src=x>')
    out = tmp_path / "bad.html"
    assert snnbench("report", str(bad), "-o", str(out)).returncode == 0
    page = out.read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<img src=x>" not in page


def test_report_bad_input(tmp_path):
    p = snnbench("report", str(tmp_path / "nope"))
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = snnbench("report", str(tmp_path))
    assert p.returncode == 2 and "not a snnbench run directory" in p.stderr


def test_compare_calls_noise_no_change_and_a_real_speed_up_faster(run_dir, tmp_path):
    noisy = _inject(run_dir, tmp_path, "noisy", 1.0, jitter=0.03)  # the same speed, other samples
    p = snnbench("compare", str(run_dir), str(noisy))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SLOWER" not in p.stdout and "faster" not in p.stdout and "no significant change" in p.stdout
    fast = _inject(run_dir, tmp_path, "fast", 0.7, jitter=0.03)
    p = snnbench("compare", str(run_dir), str(fast))
    assert p.returncode == 0 and "faster" in p.stdout and "SLOWER" not in p.stdout, p.stdout
    assert "-30." in p.stdout or "-29." in p.stdout or "-31." in p.stdout


def test_compare_warns_when_the_environments_differ(run_dir, tmp_path):
    other = _inject(run_dir, tmp_path, "other-env", 1.0, environment={
        "cpu": "Some Other CPU", "packages": {"jax": "0.0.1", "torch": "9.9"}})
    p = snnbench("compare", str(run_dir), str(other))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "different environments" in p.stdout and "CPU:" in p.stdout and "Some Other CPU" in p.stdout
    assert "jax:" in p.stdout and "-> 0.0.1" in p.stdout
    same_env = _inject(run_dir, tmp_path, "same-env", 1.0)
    assert "different environments" not in snnbench("compare", str(run_dir), str(same_env)).stdout


def test_compare_flags_injected_slowdown(run_dir, tmp_path):
    slow = _inject(run_dir, tmp_path, "slow", 1.2)
    p = snnbench("compare", str(run_dir), str(slow), "--threshold", "5%")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "SLOWER" in p.stdout and "+20.0%" in p.stdout
    # the same slowdown under a 25% threshold is reported but does not fail
    p = snnbench("compare", str(run_dir), str(slow), "--threshold", "25%")
    assert p.returncode == 0 and "slower, within threshold" in p.stdout


def test_compare_bad_threshold(run_dir):
    p = snnbench("compare", str(run_dir), str(run_dir), "--threshold", "lots")
    assert p.returncode == 2 and "expected a percentage" in p.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium')")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    out = tmp_path / "page.html"
    assert snnbench("report", str(run_dir), "-o", str(out)).returncode == 0
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    p = subprocess.run(flags + ["--virtual-time-budget=3000", "--dump-dom", out.as_uri()], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout
    assert dom.count("<table") >= 3 and dom.count("<svg") >= 2 and dom.count("<img") >= 1
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    # At 1280 px the summary table's right edge (its last column) is on screen: measured in the page
    # at that window size, then shown in a screenshot of the same size.
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", """<script>
      var t = document.querySelector('table.summary'), last = t.querySelector('thead th:last-child');
      var box = t.parentElement.getBoundingClientRect(), cell = last.getBoundingClientRect();
      document.body.setAttribute('data-fit', JSON.stringify({view: window.innerWidth, box: box.right,
        cell: cell.right, scroll: t.parentElement.scrollWidth > t.parentElement.clientWidth}));
    </script></body>"""))
    p = subprocess.run(flags + ["--window-size=1280,900", "--dump-dom", probe.as_uri()], capture_output=True,
                       text=True, timeout=120)
    import html as html_lib
    import re

    fit = json.loads(html_lib.unescape(re.search(r'data-fit="([^"]*)"', p.stdout).group(1)))
    assert fit["view"] == 1280 and fit["box"] <= fit["view"], fit
    assert fit["cell"] <= fit["box"] + 1 and not fit["scroll"], fit  # the parity column is not cut off
    shot = tmp_path / "shot.png"
    p = subprocess.run(flags + ["--window-size=1280,1000", f"--screenshot={shot}", out.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


def test_report_against_a_baseline_shows_the_change_and_the_version_changes(run_dir, tmp_path):
    """--baseline: a change column with compare's significance, the environment's changes, the
    framework version that changed highlighted."""
    def five_epochs(run, version=None):  # the tiny run times 2 epochs: too few for a significant change
        records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        for r in records:
            if r.get("metric") == "epoch_s" and r.get("stats"):
                r["samples"] = [r["stats"]["median"] * (1 + 0.001 * (i - 2)) for i in range(5)]
                r["stats"] = summarize(r["samples"])
            if version and r.get("runner") == "reference" and r.get("version"):
                r["version"] = version
        (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return run

    base = five_epochs(_inject(run_dir, tmp_path, "base", 1.0))
    slow = five_epochs(_inject(base, tmp_path, "slow-newer", 1.2, environment={"packages": {"jax": "0.0.1"}}),
                       version="0.0.1")
    out = tmp_path / "against.html"
    p = snnbench("report", str(slow), "-o", str(out), "--baseline", str(base))
    assert p.returncode == 0, p.stderr
    page = out.read_text()
    table = page.split('<table class="sortable summary">')[1].split("</table>")[0]
    assert ">change</th>" in table and "+20.0% SLOWER" in table  # as snnbench compare calls it
    assert "Against the baseline" in page and "jax: " in page and "-&gt; 0.0.1" in page
    assert "<mark" in table and "(was jax " in table
    plain = tmp_path / "plain.html"
    assert snnbench("report", str(slow), "-o", str(plain)).returncode == 0
    assert ">change</th>" not in plain.read_text()
    p = snnbench("report", str(slow), "-o", str(plain), "--baseline", str(tmp_path / "nope"))
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_every_runner_its_own_colour_and_a_compiled_twin_its_eager_twins():
    from snnbench.report import palette

    today = ["reference", "brainpy", "norse", "norse-compile", "rockpool", "rockpool-jax", "sinabs", "snntorch",
             "snntorch-compile", "spikingjelly", "spyx", "torch", "torch-compile"]
    unknown = ["zeta", "alpha", "alpha-compile", *[f"new{i}" for i in range(14)]]
    palette.register(today + unknown)
    eager = [r for r in today + unknown if not palette.is_twin(r)]
    colours = [palette.colour(r) for r in eager]
    assert len(set(colours)) == len(colours), dict(zip(eager, colours))
    assert palette.colour("torch-compile") == palette.colour("torch") and palette.linestyle("torch-compile") == "--"
    assert palette.colour("alpha-compile") == palette.colour("alpha")
    first = {r: palette.colour(r) for r in unknown}
    palette.register(list(reversed(today + unknown)))  # the same names in another order: the same colours
    assert {r: palette.colour(r) for r in unknown} == first


def test_numbers_are_plain_and_parity_counts_are_said_in_words():
    from snnbench.report.fmt import parity_text, plain

    assert [plain(v) for v in (2349.1, 2.16, 9.0, 0.000123, 1.2e-5, 131.2)] == \
        ["2349", "2.16", "9", "0.000123", "0.0000120", "131"]
    text = parity_text("deviates: spike flips 7026 (198.9%), readout err 3.6e-01")
    assert "7026 spike mismatches (198.9% of the reference's spike count)" in text and "flips" not in text


def test_the_flags_a_reader_needs():
    """A compiled runner slower than its eager twin, a time to accuracy mostly compile, an adapter past
    its fairness bound, a row from another device: each flagged with its runner."""
    from snnbench.report.flags import case_flags

    rows = [{"runner": "reference", "epoch_s": 2.0, "compile_s": 1.0, "tta_s": 10.0, "device": "cpu"},
            {"runner": "torch", "epoch_s": 4.0, "device": "cpu", "fairness": {"ratio": 1.3, "bound": 1.1}},
            {"runner": "torch-compile", "epoch_s": 8.0, "compile_s": 120.0, "tta_s": 150.0, "device": "cpu"},
            {"runner": "norse", "epoch_s": 3.0, "device": "gpu: H200"}]
    flags = {(f.runner, f.kind): f.text for f in case_flags(rows, 0.8)}
    assert set(flags) == {("torch-compile", "compiled-slower"), ("torch-compile", "compile-dominated"),
                          ("torch", "fairness"), ("norse", "device")}, flags
    assert "2.00x slower per epoch than eager torch" in flags[("torch-compile", "compiled-slower")]
    assert "120 s of its 150 s to 80% is compile (80%)" in flags[("torch-compile", "compile-dominated")]


def test_cpu_identity_is_parsed_and_a_different_generation_is_flagged(run_dir, tmp_path):
    from snnbench.harness.env import cpu_id
    from snnbench.report.envtable import environment_table
    from snnbench.report.load import load_runs

    text = ("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f bmi2\n\n"
            "processor\t: 1\ncpu family\t: 99\nmodel\t\t: 7\nflags\t\t: amx_tile\n")
    assert cpu_id(text) == {"family": "25", "model": "1", "simd": "avx avx2 avx512f fma sse4_2"}
    zen3 = {"family": "25", "model": "1", "simd": "avx avx2 fma"}
    a = _inject(run_dir, tmp_path, "zen3", 1.0, environment={"cpu": "AMD EPYC", "cpu_id": zen3})
    zen4 = {**zen3, "model": "17", "simd": "avx avx2 avx512f fma"}
    b = _inject(run_dir, tmp_path, "zen4", 1.0, environment={"cpu": "AMD EPYC", "cpu_id": zen4})
    p = snnbench("compare", str(a), str(b))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "different environments" in p.stdout and "family 25 model 1; avx avx2 fma -> family 25 model 17" in p.stdout
    same = _inject(run_dir, tmp_path, "zen3-again", 1.0, environment={"cpu": "AMD EPYC", "cpu_id": zen3})
    assert "different environments" not in snnbench("compare", str(a), str(same)).stdout
    html = environment_table(load_runs([a, b]))
    assert "family 25 model 17; avx avx2 avx512f fma" in html
    assert '<tr class="differs"><th class="t">CPU family, model, SIMD</th>' in html
