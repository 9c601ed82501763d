"""The per-op profile tools of tests/benchmarks (docs/reference-performance.md quotes them) run end to
end on a small convolutional case and attribute time to the network's layers."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from snnbench.runners import get_runner_class

from .conftest import conv_network_yaml

ROOT = Path(__file__).resolve().parents[1]


def _suite(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"suite": "tiny", "defaults": {"dataset": "nmnist", "time_steps": 8, "batch": 4},
                                    "network": conv_network_yaml(1), "cases": [{"id": "c"}]}))
    return str(path)


def _tool(module: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _need(name: str) -> None:
    ok = get_runner_class(name).available()
    if not ok.ok:
        pytest.skip(ok.reason)


def test_profile_reference_splits_the_step_by_layer(tmp_path):
    _need("reference")
    out = _tool("tests.benchmarks.profile_reference", "c", "--suite", _suite(tmp_path), "--steps", "2", "--top", "3")
    assert "training step (fwd+bwd, 2 in one program) median" in out
    layers = out.split("by layer:")[1].split("top ops:")[0]
    for group in ("fwd layer0 conv2d", "bwd layer0 conv2d", "fwd layer3 conv2d", "bwd layer3 conv2d", "bwd layer1 lif"):
        assert group in layers, out
    assert len(out.split("top ops:")[1].strip().splitlines()) == 3


def test_profile_torch_names_the_convolutions(tmp_path):
    _need("torch")
    out = _tool("tests.benchmarks.profile_torch", "c", "--suite", _suite(tmp_path), "--top", "40")
    assert "under the profiler" in out and "self time per step" in out
    assert "aten::convolution_backward" in out
    assert "[32, 2, 34, 34]" in out  # the first convolution's input: all T * B frames at once


def test_tools_restart_under_the_allocator_settings_once(monkeypatch):
    import os

    from snnbench.harness import allocator

    calls = []
    monkeypatch.setattr(os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    monkeypatch.setattr(sys, "argv", ["tool", "case", "--top", "3"])
    for key in allocator.allocator_env():
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")  # a stray setting is dropped, as the harness's workers drop it
    allocator.ensure_worker_environ("tests.benchmarks.profile_torch")
    (argv, env), = calls
    assert argv[1:] == ["-m", "tests.benchmarks.profile_torch", "case", "--top", "3"]
    assert {k: env[k] for k in allocator.allocator_env()} == allocator.allocator_env()
    assert "MALLOC_ARENA_MAX" not in env
    for key, value in allocator.allocator_env().items():
        monkeypatch.setenv(key, value)
    allocator.ensure_worker_environ("tests.benchmarks.profile_torch")
    assert len(calls) == 1  # already under the settings: no second start
