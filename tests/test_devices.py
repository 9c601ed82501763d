"""One device per run, on a GPU machine simulated on this CPU one: an executable ``nvidia-smi`` on
PATH that reports an H200, as the NVIDIA driver's tool does. The frameworks installed here are CPU
builds, so on such a machine every runner must be skipped with its reason and the fix, and none may
train on the CPU instead; the Makefile must choose the CUDA install path."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from .test_cli import snnbench, tiny_suite  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]

FAKE_NVIDIA_SMI = """#!/bin/sh
# what the driver's nvidia-smi prints, for the two queries snnbench and the Makefile make
case "$*" in
  *-L*) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)" ;;
  *--query-gpu*) echo "NVIDIA H200, 570.86.15, 143771 MiB, 1980 MHz, 1980 MHz, 700.00 W" ;;
  *) echo "NVIDIA-SMI 570.86.15 (simulated by snnbench's tests)" ;;
esac
"""


@pytest.fixture
def gpu_path(tmp_path) -> str:
    """A PATH whose first entry holds the simulated ``nvidia-smi``."""
    bin_dir = tmp_path / "fake-driver"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text(FAKE_NVIDIA_SMI)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def _cpu_only_path() -> str:
    """PATH without any nvidia-smi (CI's machines have none; a developer's might)."""
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "nvidia-smi").exists())


def test_auto_resolves_to_the_gpu_for_the_whole_run_and_nothing_runs_on_the_cpu(tmp_path, gpu_path,
                                                                                 tiny_suite, small_shd):  # noqa: F811
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out),
                 "--runners", "reference,torch", "--no-report", env_extra={"PATH": gpu_path})
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = out.iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["device_resolved"] == ["gpu"]
    assert manifest["environment"]["gpus"][0]["name"] == "NVIDIA H200"
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["status"] == "ok"]  # nothing trained on the CPU instead
    reasons = {r["runner"]: r["reason"] for r in records if r["metric"] == "job"}
    assert set(reasons) == {"reference", "torch"}
    assert "no CUDA backend" in reasons["reference"] and "make install-gpu" in reasons["reference"]
    assert "CPU-only build" in reasons["torch"] and "make install-gpu" in reasons["torch"]
    assert {r["status"] for r in records if r["metric"] == "job"} == {"skipped"}
    assert all(r["device"] != "cpu" for r in records), {r["device"] for r in records}


def test_explicit_cpu_on_a_gpu_machine_is_still_allowed(tmp_path, gpu_path, tiny_suite, small_shd):  # noqa: F811
    out = tmp_path / "results"
    p = snnbench("run", "--suite", str(tiny_suite), "--quick", "--data-dir", str(small_shd), "--out", str(out),
                 "--device", "cpu", "--epochs", "1", "--no-report", env_extra={"PATH": gpu_path})
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert {r["status"] for r in records} == {"ok"} and {r["device"] for r in records} == {"cpu"}


def test_env_lists_each_runners_devices_and_warns_on_a_gpu_machine(gpu_path):
    p = snnbench("env", env_extra={"PATH": gpu_path})
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["accelerator"] == "gpu" and info["devices"]["reference"] == ["cpu"]
    assert "reference cannot use the gpu here" in p.stderr and "a run on this machine will skip it" in p.stderr
    p = snnbench("env", env_extra={"PATH": _cpu_only_path()})
    info = json.loads(p.stdout)
    assert info["accelerator"] == "cpu" and "warning" not in p.stderr
    assert info["devices"]["torch"] == ["cpu"] and info["devices"]["reference"] == ["cpu"]


def test_parity_command_resolves_auto_once(gpu_path, tiny_suite):  # noqa: F811
    p = snnbench("parity", "--suite", str(tiny_suite), "--runners", "torch", env_extra={"PATH": gpu_path})
    assert "skipped" in p.stdout and "make install-gpu" in " ".join(p.stdout.split())


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target", ["run", "test"])
def test_makefile_takes_the_cuda_path_where_the_driver_reports_a_gpu(tmp_path, gpu_path, target):
    """``make -n`` prints the install recipe it would run (nothing is installed)."""
    def recipe(path: str) -> str:
        p = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, "PATH": path}, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    gpu, cpu = recipe(gpu_path), recipe(_cpu_only_path())
    assert "--index-url https://download.pytorch.org/whl/cu" in gpu and "cuda-pins.txt" in gpu
    assert "'.[all,gpu,dev]'" in gpu and "'torch==2.13.0'" not in gpu
    assert "'torch==2.13.0'" in cpu and "--index-url" not in cpu and "gpu" not in cpu.replace("install-gpu", "")


def test_compare_flags_rows_from_different_devices(tmp_path):
    from snnbench.report.compare import device_warnings
    from snnbench.report.load import Run

    def run(name, devices):
        records = [{"suite": "s", "case": "c", "runner": runner, "metric": "epoch_s", "status": "ok", "device": d}
                   for runner, d in devices.items()]
        return Run(tmp_path / name, {}, records)

    mixed = run("mixed", {"reference": "cpu", "torch": "gpu: NVIDIA H200"})
    (line,) = device_warnings(mixed)
    assert "different devices (cpu, gpu: NVIDIA H200)" in line
    base, new = run("base", {"reference": "cpu"}), run("new", {"reference": "gpu: NVIDIA H200"})
    (line,) = device_warnings(base, new)
    assert "1 job(s) ran on another device" in line and "cpu -> gpu: NVIDIA H200" in line
    assert device_warnings(base, run("same", {"reference": "cpu"})) == []
