"""Runners from other packages: an example plugin package installed from a local path (no network)
through the ``snnbench.runners`` entry-point group, and one that raises on import.

The plugin's one runner is plain PyTorch under another name; what is tested is that everything the
project derives from the registry picks it up without any edit: ``runners: all`` suites, the adapter
tests' parametrization, the environment record, the report's colours, ``list runners`` and a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_cli import snnbench, tiny_suite  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
from snnbench.runners.torch_runner import TorchRunner


class ExampleRunner(TorchRunner):
    """Plain PyTorch under a plugin's name: the smallest runner a package can ship."""

    name = "example-plugin"
    framework = "torch"
    packages = ("torch", "snnbench-example-plugin")
'''


def _package(root: Path, dist: str, module: str, entry: str, body: str) -> Path:
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / module / "__init__.py").write_text(textwrap.dedent(body))
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "0.1.0"

        [project.entry-points."snnbench.runners"]
        {entry} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
    '''))
    return pkg


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """PYTHONPATH holding the two plugin packages, pip-installed from local paths without network."""
    root = tmp_path_factory.mktemp("plugins")
    good = _package(root, "snnbench-example-plugin", "snnbench_example_plugin", "example", PLUGIN)
    bad = _package(root, "snnbench-broken-plugin", "snnbench_broken_plugin", "broken",
                   "raise RuntimeError('this plugin is broken on purpose')\n")
    site = root / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                        "--target", str(site), str(good), str(bad)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(f"pip could not install the local plugin packages: {p.stderr[-2000:]}")
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def test_plugins_are_listed_and_a_broken_one_is_one_line(plugin_env):
    p = snnbench("list", "runners", env_extra=plugin_env)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert "example-plugin" in text and "broken" in text and "failed to import" in text
    warnings = [line for line in p.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "snnbench_broken_plugin" in warnings[0] and "broken on purpose" in warnings[0]
    assert "Traceback" not in p.stderr


def test_a_plugin_runner_trains_and_a_broken_one_is_skipped(tmp_path, plugin_env, tiny_suite, small_shd):  # noqa: F811
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out),
                 "--runners", "reference,example-plugin,broken", "--epochs", "1", "--no-report", env_extra=plugin_env)
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    jobs = {r["runner"]: r for r in records if r["metric"] == "job"}
    assert jobs["example-plugin"]["status"] == "ok" and jobs["reference"]["status"] == "ok"
    assert jobs["broken"]["status"] == "skipped" and "failed to import" in jobs["broken"]["reason"]
    parity = [r for r in records if r["metric"] == "parity" and r["runner"] == "example-plugin"]
    assert parity and parity[0]["value"] == "pass"  # the gate ran and passed
    acc = [r for r in records if r["metric"] == "test_acc" and r["runner"] == "example-plugin"]
    assert acc and acc[0]["status"] == "ok"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["environment"]["packages"]["snnbench-example-plugin"] == "0.1.0"


def test_everything_derived_from_the_registry_sees_the_plugin(plugin_env):
    """A suite's ``runners: all``, the adapter tests' parametrization, the report's colours: no list
    to edit for a new runner."""
    script = textwrap.dedent('''
        import json
        from snnbench.runners import parse_runner_list
        from snnbench.spec import load_suite
        from snnbench.report import palette
        from tests.test_adapters import ADAPTERS

        suite = load_suite("shd")
        runners = parse_runner_list(None, suite.runners)
        colours = {r: palette.colour(r) for r in runners}
        print(json.dumps({"suite": runners, "tests": ADAPTERS, "colours": colours}))
    ''')
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, **plugin_env})
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert "example-plugin" in got["suite"] and "reference" in got["suite"]
    assert "example-plugin" in got["tests"]
    bases = {r: c for r, c in got["colours"].items() if not r.endswith("-compile")}
    assert len(set(bases.values())) == len(bases), bases  # its own colour, no other runner's
