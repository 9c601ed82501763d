"""Published results: profiles, the machine class, the page and the README's headline table, and the
committed CPU publish itself (its page and the README must be what its run directories render to)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from snnbench.errors import SnnbenchError
from snnbench.publish import (HEADLINE_END, HEADLINE_START, PublishRun, headline_markdown, load_profile,
                              machine_class, published_runs, readme_headline, replace_older, update_readme)

from .conftest import tiny_network_yaml
from .test_cli import snnbench

REPO = Path(__file__).resolve().parents[1]
CPU_CLASS = "x86_64-2cpu"


def _profile(tmp_path: Path, runs: list, name: str = "p") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"profile": name, "runs": runs}))
    return path


def test_the_shipped_profiles_load_and_trim_only_training_size():
    cpu = load_profile("cpu")
    assert [r.suite for r in cpu.runs] == ["shd", "nmnist", "layer", "on", "longseq", "precision"]
    nmnist = next(r for r in cpu.runs if r.suite == "nmnist").load()
    full = PublishRun(suite="nmnist", quick=True).load()
    (trimmed,), (untrimmed,) = nmnist.cases, full.cases
    assert (trimmed.spec.train_samples, trimmed.spec.test_samples, trimmed.spec.epochs) == (512, 256, 2)
    # everything that decides what is computed is the suite's own
    assert trimmed.network == untrimmed.network
    assert (trimmed.spec.time_steps, trimmed.spec.batch, trimmed.spec.lr) == \
        (untrimmed.spec.time_steps, untrimmed.spec.batch, untrimmed.spec.lr)
    assert [r.suite for r in cpu.runs if r.nir_check] == ["shd"]  # the NIR check on the trained SHD network
    shd = next(r for r in cpu.runs if r.suite == "shd").load()
    assert shd.cases[0].spec.train_samples is None and shd.cases[0].spec.epochs == 10  # the full case
    # precision on a CPU: the SHD cases at full size and T, fewer epochs, the reference and eager torch
    precision = next(r for r in cpu.runs if r.suite == "precision")
    assert precision.runners == "reference,torch"
    cases = precision.load().cases
    assert [c.spec.id for c in cases] == ["shd-dtypefloat32", "shd-dtypebfloat16", "shd-dtypefloat16"]
    assert all(c.spec.epochs == 3 and c.spec.train_samples is None and c.network.time_steps == 128 for c in cases)
    gpu = load_profile("gpu")
    assert {r.suite for r in gpu.runs} == {"shd", "nmnist", "layer", "on", "longseq", "precision"}
    assert not any(r.trims for r in gpu.runs)


def test_timing_only_cases_are_not_trimmed():
    layer = PublishRun(suite="layer", quick=True, trims=(("epochs", 3),)).load()
    assert all(c.spec.epochs == 0 for c in layer.cases)


@pytest.mark.parametrize("runs, message", [
    ([{"suite": "shd", "speed": 2}], "unknown field 'speed'"),
    ([{"suite": "shd", "epochs": 0}], "epochs: expected a positive integer"),
    ([{"suite": "shd", "train_samples": 1.5}], "train_samples: expected a positive integer"),
    ([{"suite": "shd", "nir_check": "yes"}], "nir_check: expected true or false"),
    ([{"suite": "shd"}, {"suite": "shd"}], "each suite may appear once"),
    ([{"suite": "nosuch"}], "unknown suite 'nosuch'"),
    ([{"suite": "shd", "cases": "zzz*"}], "no case of suite 'shd' matches"),
    ([{"runners": "all"}], "suite: expected a suite name"),
    ([], "non-empty 'runs' list"),
])
def test_bad_profiles_are_one_clear_error(tmp_path, runs, message):
    with pytest.raises(SnnbenchError, match=re.escape(message)):
        load_profile(str(_profile(tmp_path, runs)))


def test_machine_class_names_the_cpu_and_the_gpu_model():
    cpu = machine_class([])
    assert re.fullmatch(r"[a-z0-9_]+-\d+cpu", cpu)
    assert machine_class([{"name": "NVIDIA H200"}]) == f"{cpu}-nvidia-h200"
    assert machine_class([{"name": "NVIDIA H100 80GB HBM3"}]) == f"{cpu}-nvidia-h100"


def test_readme_headline_block_round_trip(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{HEADLINE_START}\nold\n{HEADLINE_END}\n\n## Quick start\n")
    md = "# snnbench summary\n\n## layer-1 (layer)\n\n| a |\n|---|\n| 1 |\n\n## shd-1 (shd)\n\n| b |\n|---|\n| 2 |\n"
    table = headline_markdown(md)
    assert table == "| b |\n|---|\n| 2 |"
    update_readme(readme, table, "reports/c.md")
    text = readme.read_text()
    assert readme_headline(readme) == table and "old" not in text and text.endswith("## Quick start\n")
    assert "[reports/c.md](reports/c.md)" in text
    with pytest.raises(SnnbenchError, match="no 'shd' section"):
        headline_markdown("## layer-1 (layer)\n\n| a |\n")
    readme.write_text("no markers")
    with pytest.raises(SnnbenchError, match="no '<!-- headline:start -->'"):
        update_readme(readme, table, "x")


def test_replace_older_keeps_one_run_per_suite(tmp_path):
    def run(name: str, suite: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        (path / "manifest.json").write_text(json.dumps({"suite": suite}))
        return path

    old_shd, layer, new_shd = run("shd-1", "shd"), run("layer-1", "layer"), run("shd-2", "shd")
    assert replace_older(tmp_path, new_shd) == [old_shd]
    assert published_runs(tmp_path) == [layer, new_shd]


def test_publish_end_to_end_then_render_only_gives_the_same_page(tmp_path, small_shd):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump({
        "suite": "shd", "runners": ["reference"], "network": tiny_network_yaml(),
        "defaults": {"time_steps": 32, "channels": 32, "batch": 32, "epochs": 5, "lr": 0.01},
        "timing": {"warmup": 1, "min_repeats": 3, "min_time_s": 0.05}, "cases": [{"id": "tiny"}],
    }))
    profile = _profile(tmp_path, [{"suite": str(suite), "train_samples": 64, "test_samples": 32, "epochs": 1,
                                   "nir_check": True}])
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{HEADLINE_START}\n{HEADLINE_END}\nrest\n")
    common = ["--profile", str(profile), "--machine-class", "testclass", "--results", str(tmp_path / "results"),
              "--reports", str(tmp_path / "reports")]
    p = snnbench("publish", *common, "--data-dir", str(small_shd), "--readme", str(readme))
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = published_runs(tmp_path / "results" / "testclass")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["publish"]["trims"] == {"train_samples": 64, "test_samples": 32, "epochs": 1}
    assert manifest["publish"]["nir_check"] is True and "NIR snnbench round trip" in p.stdout
    assert manifest["cases"][0]["spec"]["train_samples"] == 64
    page = tmp_path / "reports" / "testclass.md"
    assert (tmp_path / "reports" / "testclass.html").is_file()
    first = page.read_text()
    assert "### NIR interoperability" in first
    table = readme_headline(readme)
    assert table.startswith("| case | runner |") and "| tiny | reference | ok |" in table
    p = snnbench("publish", *common, "--render-only")
    assert p.returncode == 0, p.stderr + p.stdout
    assert page.read_text() == first


def test_publish_bad_input_is_one_line(tmp_path):
    for args, message in [(["--profile", "nosuch"], "unknown publish profile 'nosuch'"),
                          (["--suites", "mnist"], "--suites: 'mnist' is not in profile 'cpu'"),
                          (["--readme", str(tmp_path / "none.md")], "no such file"),
                          (["--render-only", "--machine-class", "empty", "--results", str(tmp_path)],
                           "holds no run to render")]:
        p = snnbench("publish", *args)
        assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("snnbench: error: ") and message in p.stderr, p.stderr


def _tracked(path: Path) -> list[str]:
    """The files git tracks under ``path`` (every file there when this is not a git checkout)."""
    import subprocess

    p = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", str(path)], cwd=REPO,
                       capture_output=True, text=True)
    return p.stdout.split() if p.returncode == 0 else [str(f) for f in path.rglob("*") if f.is_file()]


def test_the_committed_cpu_publish_is_what_its_runs_render_to():
    """reports/<class>.md and the README's headline table are exactly what ``snnbench report`` makes
    of the committed run directories (re-rendered here), and the runs are complete and small."""
    from snnbench.report.html import markdown
    from snnbench.report.load import load_runs

    runs_dir = REPO / "results" / CPU_CLASS
    paths = published_runs(runs_dir)
    assert {json.loads((p / "manifest.json").read_text())["suite"] for p in paths} == \
        {"shd", "nmnist", "layer", "longseq", "precision"}, "the CPU publish is committed under results/" + CPU_CLASS
    for path in paths:
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["status"] == "complete", path
        tracked = _tracked(path)
        assert not any(Path(f).suffix in (".npz", ".pt", ".ckpt", ".nir") for f in tracked), \
            "no weights committed (a run's weights/ and nir/ stay out of git)"
        # what is committed (a publish leaves its weights and NIR files beside it, ignored by git)
        assert sum((REPO / f).stat().st_size for f in tracked) < 4 * 2**20, path
    rendered = markdown(load_runs(paths))
    assert (REPO / "reports" / f"{CPU_CLASS}.md").read_text(encoding="utf-8") == rendered
    assert readme_headline(REPO / "README.md") == headline_markdown(rendered)
    page = (REPO / "reports" / f"{CPU_CLASS}.html").read_text(encoding="utf-8")
    assert len(page.encode()) < 2**20, "the page stays under 1 MB (SVG at the size shown, no PNG)"
    assert "data:image/png" not in page and all(f"<h2>{t}</h2>" in page for t in ("SHD (Spiking Heidelberg Digits)",
                                                                               "N-MNIST"))
