"""The command line as a user meets it: a quick end-to-end run, and bad input."""

import json
import subprocess
import sys

import pytest
import yaml

from .conftest import tiny_network_yaml


def snnbench(*args, env_extra=None, cwd=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "snnbench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture
def tiny_suite(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "suite": "tiny",
        "runners": ["reference"],
        "defaults": {"time_steps": 64, "channels": 32, "batch": 32, "epochs": 2, "lr": 0.01},
        "network": tiny_network_yaml(),
        "cases": [{"id": "tiny-b32"}],
        "quick": {"epochs": 2, "train_samples": 128, "test_samples": 64},
    }))
    return path


def test_quick_end_to_end(tmp_path, tiny_suite, small_shd):
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out))
    assert p.returncode == 0, p.stderr + p.stdout
    assert "epoch 2/2" in p.stdout and "compile" in p.stdout and "test acc" in p.stdout
    assert "fwdbwd_ms median" in p.stdout
    assert "[1/1] tiny-b32 reference  (elapsed" in p.stdout  # not a terminal: plain progress lines
    (run_dir,) = out.iterdir()
    report = tmp_path / "reports" / f"{run_dir.name}.html"  # the run writes its report, beside --out
    assert report.exists() and f"wrote {report}" in p.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["synthetic_data"] is True
    assert manifest["environment"]["packages"]["jax"]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    metrics = {r["metric"]: r for r in records}
    assert set(metrics) >= {"fwd_ms", "fwdbwd_ms", "compile_s", "epoch_s", "test_acc"}
    assert all(r["status"] == "ok" for r in records)
    assert {r["device"] for r in records} == {"cpu"}  # resolved, never 'auto'
    epoch = metrics["epoch_s"]
    assert epoch["shape"]["T"] == 64 and epoch["framework"] == "jax" and len(epoch["samples"]) == 2
    curve = epoch["extra"]["curve"]
    assert epoch["accuracy"] == curve[-1]["test_acc"] == metrics["test_acc"]["value"]
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] and epoch["extra"]["train_samples"] == 128
    consistency = epoch["step_consistency"]  # fwd+bwd timed between the epochs (the first left out)
    assert len(consistency["fwdbwd_samples_ms"]) == 1 and consistency["fwdbwd_ms_per_step"] > 0
    assert consistency["ratio"] == pytest.approx(
        1e3 * epoch["value"] / epoch["extra"]["batches_per_epoch"] / consistency["fwdbwd_ms_per_step"])
    assert epoch["memory"]["phase"] == "train" and metrics["fwd_ms"]["memory"]["phase"] == "fwd"
    assert metrics["fwdbwd_ms"]["extra"]["steps_per_sample"] >= 2 and metrics["fwdbwd_ms"]["per_call_ms"] > 0
    assert manifest["allocator"]["env"]["MALLOC_MMAP_MAX_"] == "0"
    assert epoch["data"]["synthetic"] is True
    assert metrics["fwd_ms"]["stats"]["n"] >= 3
    # the trained weights are kept and named; efficiency of the trained and the timed network is recorded
    assert epoch["weights"] == "weights/tiny-b32--reference.npz" and (run_dir / epoch["weights"]).is_file()
    assert epoch["efficiency"]["params"] == 32 * 32 + 32 + 32 * 20 + 20  # tiny: 32 inputs, 32 LIF, 20 readout
    assert 0 <= epoch["efficiency"]["activation_sparsity"] <= 1 and metrics["fwd_ms"]["efficiency"]["synops"]["dense"] > 0
    assert "synops" in p.stdout and "sparse" in p.stdout
    # NIR: the trained network out and back scores what training's own evaluation scored (the same weights,
    # data and model: two figures that must agree)
    nir = tmp_path / "m.nir"
    p = snnbench("export", str(run_dir), "-o", str(nir))
    assert p.returncode == 0 and nir.is_file(), p.stderr
    p = snnbench("nir-check", str(run_dir), "--frameworks", "norse")
    assert p.returncode == 0, p.stderr + p.stdout
    checks = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    checks = [r for r in checks if r["metric"] == "nir"]
    assert checks[0]["framework"] == "snnbench" and checks[0]["value"] == pytest.approx(epoch["accuracy"], abs=1e-9)
    assert {(r["framework"], r["direction"]) for r in checks[1:]} == {("norse", "import"), ("norse", "export")}
    assert all(r.get("value") is not None or r.get("reason") for r in checks)
    assert "NIR check" in p.stdout


def test_adapter_run_carries_parity(tmp_path, tiny_suite, small_shd):
    pytest.importorskip("torch")
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out),
                 "--runners", "reference,torch")
    assert p.returncode == 0, p.stderr + p.stdout
    assert "parity pass" in p.stdout
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    (gate,) = [r for r in records if r["metric"] == "parity"]
    assert gate["runner"] == "torch" and gate["value"] == "pass"
    torch_epoch = [r for r in records if r["runner"] == "torch" and r["metric"] == "epoch_s"][0]
    assert torch_epoch["parity"]["status"] == "pass" and torch_epoch["status"] == "ok"
    ref_epoch = [r for r in records if r["runner"] == "reference" and r["metric"] == "epoch_s"][0]
    assert ref_epoch["parity"]["status"] == "reference"
    assert not any(r["runner"] == "reference" and r["metric"] == "parity" for r in records)
    # the per-step timing of a runner that loops its per-call step is warm already; the reference's K-batch
    # scan is a program of its own, compiled ahead of time: no warm-up call for either
    steps = {r["runner"]: r["extra"] for r in records if r["metric"] == "fwdbwd_ms"}
    for runner in ("torch", "reference"):
        assert steps[runner]["per_step"]["warmup_ms"] == [] and len(steps[runner]["per_call"]["warmup_ms"]) >= 1
    # the gate ran in the benchmark's own worker (no parity worker, no log of its own), its time a phase of the job
    assert not (run_dir / "logs" / "tiny-b32--torch--parity.log").exists()
    jobs = {r["runner"]: r for r in records if r["metric"] == "job"}
    assert jobs["torch"]["phases"]["parity"] > 0 and "parity" not in jobs["reference"]["phases"]
    for job in jobs.values():  # every second of a job in one phase or another, 'other' a sliver
        assert sum(job["phases"].values()) == pytest.approx(job["job_wall_s"], rel=0.01)
        assert job["phases"].get("other", 0.0) < 0.05 * job["job_wall_s"]
        assert {"start-up", "import", "training", "evaluation", "fwd timing", "fwd+bwd timing"} <= set(job["phases"])
    timeline = json.loads((run_dir / "manifest.json").read_text())["timeline"]
    assert len(timeline) == 1 and timeline[0]["jobs_s"] >= sum(j["job_wall_s"] for j in jobs.values())
    assert "where the time went:" in p.stdout and "  torch: " in p.stdout


def test_parity_command(tmp_path, tiny_suite):
    pytest.importorskip("torch")
    p = snnbench("parity", "--suite", str(tiny_suite), "--runners", "torch,snntorch", "--time-steps", "16")
    assert p.returncode == 0, p.stderr + p.stdout
    assert "torch pass" in p.stdout and "parity against the reference" in p.stdout


def test_default_data_is_synthetic_and_says_so(tmp_path, tiny_suite):
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    assert "synthetic SHD" in p.stdout


def test_unavailable_runner_is_skipped_not_fatal(tmp_path, tiny_suite, small_shd):
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out",
                 str(tmp_path / "r"), "--device", "tpu")
    assert p.returncode == 0, p.stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in recs] == ["run", "job"]
    assert all(r["status"] == "skipped" and "tpu" in r["reason"] for r in recs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--suite", "no-such-suite"], "unknown suite 'no-such-suite'"),
        (["run", "--suite", "shd", "--runners", "reference,nope"], "unknown runner 'nope'"),
        (["run", "--suite", "shd", "--data-dir", "/nonexistent/dir"], "does not exist"),
        (["run"], "required: --suite"),
        (["list", "things"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line(args, message):
    p = snnbench(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_malformed_yaml_and_empty_data_dir(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: [unclosed\n")
    p = snnbench("run", "--suite", str(bad))
    assert p.returncode == 2 and "malformed YAML" in p.stderr and "Traceback" not in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "results"
    p = snnbench("run", "--suite", "shd", "--data-dir", str(empty), "--out", str(out))
    assert p.returncode == 2 and "has no SHD" in p.stderr and "Traceback" not in p.stderr
    assert not out.exists() or not any(out.iterdir())  # rejected input leaves no run directory
    assert p.stdout == ""  # the error line is all a user sees


def test_truncated_h5_via_cli(tmp_path, small_shd, tiny_suite):
    root = tmp_path / "trunc"
    (root / "SHD").mkdir(parents=True)
    for split in ("train", "test"):
        data = (small_shd / "SHD" / f"shd_{split}.h5").read_bytes()
        (root / "SHD" / f"shd_{split}.h5").write_bytes(data[:2000])
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(root), "--out", str(tmp_path / "r"))
    assert p.returncode == 2 and "truncated or corrupt" in p.stderr and "Traceback" not in p.stderr


def test_list_and_env():
    p = snnbench("list", "runners")
    assert p.returncode == 0 and "reference" in p.stdout
    p = snnbench("list", "suites")
    assert p.returncode == 0 and "shd" in p.stdout
    p = snnbench("env")
    assert p.returncode == 0 and json.loads(p.stdout)["cpu_count"] >= 1
