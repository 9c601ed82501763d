"""The harness under failure: timing accuracy, every failure status, and resuming a killed run.

Misbehaving runners come from tests/fake_runners.py through the SNNBENCH_PLUGINS hook."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from snnbench.harness.timing import RepeatPolicy, summarize, time_calls

from . import fake_runners
from .conftest import tiny_network_yaml

ROOT = Path(__file__).resolve().parent.parent
ENV = {"SNNBENCH_PLUGINS": "tests.fake_runners", "PYTHONPATH": str(ROOT)}


def write_suite(path, cases, runners, timeout_s=60, memory_limit_gb=None, epochs=3):
    data = {
        "suite": "harness", "runners": runners,
        "defaults": {"time_steps": 16, "channels": 32, "batch": 16, "epochs": epochs, "timeout_s": timeout_s,
                     "train_samples": 64, "test_samples": 32},
        "timing": {"warmup": 1, "min_repeats": 5, "min_time_s": 0.3},
        "network": tiny_network_yaml(), "cases": [{"id": c} for c in cases],
    }
    if memory_limit_gb:
        data["memory_limit_gb"] = memory_limit_gb
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "snnbench", *args], capture_output=True, text=True,
                          env={**os.environ, **ENV}, cwd=ROOT, timeout=600, **kw)


def records_of(out: Path):
    (run_dir,) = out.iterdir()
    return run_dir, [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_summary_statistics():
    st = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert st["median"] == 3.0 and st["min"] == 1.0 and st["q1"] == 2.0 and st["q3"] == 4.0
    assert st["ci_low"] <= 3.0 <= st["ci_high"] and st["n"] == 5 and st["cv"] > 1
    assert summarize([2.0])["ci_low"] == summarize([2.0])["ci_high"] == 2.0


def test_time_calls_respects_policy_and_barrier():
    calls, waited = [], []
    t = time_calls(lambda: calls.append(1) or len(calls), waited.append,
                   RepeatPolicy(warmup=2, min_repeats=4, min_time_s=0.0))
    assert len(t.seconds) == 4 and len(calls) == 6 and waited == list(range(1, 7))  # barrier on every result
    assert len(t.warmup_seconds) == 2 and len(t.minor_faults) == len(t.sys_seconds) == 4
    per = t.per(4)
    assert per.seconds == [s / 4 for s in t.seconds] and per.minor_faults == [f / 4 for f in t.minor_faults]


def test_the_median_ci_is_the_binomial_order_statistics():
    from snnbench.harness.timing import median_ci

    assert median_ci(list(range(1, 21))) == (6.0, 15.0)  # the textbook 95% interval for n = 20
    assert median_ci([5.0, 1.0, 3.0]) == (1.0, 5.0)  # too few samples for 95%: the whole range
    assert median_ci(list(range(1, 11))) == (2.0, 9.0)
    rng = np.random.default_rng(0)  # its coverage of the true median, over many draws, is at least 95%
    covered = [lo <= 0.0 <= hi for lo, hi in (median_ci(list(rng.normal(size=15))) for _ in range(2000))]
    assert np.mean(covered) >= 0.94


def test_the_adaptive_policy_stops_once_the_median_is_known_and_never_later_than_the_time_rule():
    from snnbench.harness.timing import ci_tight

    steady = time_calls(lambda: time.sleep(0.02), lambda v: None,
                        RepeatPolicy(warmup=0, min_repeats=3, min_time_s=30.0, ci_rel=1.0))
    assert len(steady.seconds) == 3  # (a CI within +-100% of the median: tight at once)
    noisy = iter([1.0, 1.0, 9.0] * 100)
    assert not ci_tight([1.0, 1.0, 9.0], 0.5) and ci_tight([1.0, 1.02, 0.99, 1.01, 1.0, 1.0], 0.03)
    calls = time_calls(lambda: next(noisy), lambda v: None, RepeatPolicy(warmup=0, min_repeats=3, min_time_s=0.0,
                                                                          ci_rel=0.01))
    assert len(calls.seconds) == 3  # the time rule ends it first; adaptive only ever cuts short
    assert len(time_calls(lambda: None, lambda v: None, RepeatPolicy(warmup=2, min_repeats=2, min_time_s=0.0),
                          warmup=0).warmup_seconds) == 0  # a caller that knows the callable is warm


# malloc + touch + free of 64 MiB per call, as XLA:CPU does with a program's temporaries (NumPy
# would ask for huge pages, which hides the effect)
FRESH_BLOCKS = """
import ctypes, json
from snnbench.harness.timing import RepeatPolicy, time_calls
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
def block():
    p = libc.malloc(64 * 2**20)
    ctypes.memset(p, 1, 64 * 2**20)
    libc.free(p)
t = time_calls(block, lambda v: None, RepeatPolicy(warmup=1, min_repeats=5, min_time_s=0))
print(json.dumps(t.minor_faults))
"""


def test_page_faults_are_counted_and_the_worker_allocator_reuses_blocks():
    """A 64 MiB block per call: glibc's default maps and zero-fills it on every call (16,384 faults,
    counted per sample); under the workers' allocator settings it is reused from the heap."""
    from snnbench.harness.job import _job_env

    env_default = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    default = subprocess.run([sys.executable, "-c", FRESH_BLOCKS], capture_output=True, text=True,
                             env={**env_default, "PYTHONPATH": str(ROOT)}, check=True)
    worker = subprocess.run([sys.executable, "-c", FRESH_BLOCKS], capture_output=True, text=True,
                            env={**_job_env("/tmp/unused"), "PYTHONPATH": str(ROOT)}, check=True)
    faults_default, faults_worker = json.loads(default.stdout), json.loads(worker.stdout)
    assert min(faults_default) > 10_000, faults_default
    assert max(faults_worker) < 100, faults_worker


def test_sleep_runner_is_measured_within_tolerance(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["sleepy"], ["fake-sleep"])
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr + p.stdout
    _, recs = records_of(tmp_path / "r")
    by = {r["metric"]: r for r in recs}
    for metric, expected in (("fwd_ms", 1e3 * fake_runners.FWD_S), ("fwdbwd_ms", 1e3 * fake_runners.FWDBWD_S),
                             ("epoch_s", fake_runners.EPOCH_S)):
        median = by[metric]["stats"]["median"]
        assert expected <= median <= expected * 1.3 + (2 if metric != "epoch_s" else 0.02), (metric, median)
    assert by["fwd_ms"]["stats"]["n"] >= 5 and len(by["fwd_ms"]["samples"]) == by["fwd_ms"]["stats"]["n"]
    assert by["job"]["status"] == "ok"


def test_every_failure_gets_its_status_and_the_rest_completes(tmp_path, small_shd):
    runners = ["fake-raise", "fake-kill", "fake-hang", "fake-hog", "fake-missing", "fake-sleep"]
    suite = write_suite(tmp_path / "s.yaml", ["c1"], runners, timeout_s=8, memory_limit_gb=0.75)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"),
                "--no-parity")
    assert p.returncode == 0, p.stderr + p.stdout
    run_dir, recs = records_of(tmp_path / "r")
    jobs = {r["runner"]: r for r in recs if r["metric"] == "job"}
    assert set(jobs) == set(runners)
    assert jobs["fake-raise"]["status"] == "failed" and "simulated framework error" in jobs["fake-raise"]["reason"]
    assert jobs["fake-kill"]["status"] == "crashed" and "SIGKILL" in jobs["fake-kill"]["reason"]
    assert jobs["fake-hang"]["status"] == "timeout"
    assert jobs["fake-hog"]["status"] == "oom" and "memory cap" in jobs["fake-hog"]["reason"]
    assert jobs["fake-missing"]["status"] == "skipped" and "imaginaryframework" in jobs["fake-missing"]["reason"]
    assert jobs["fake-sleep"]["status"] == "ok"
    assert "snnbench[imaginary]" in p.stdout  # reasons are printed literally, not as console markup
    assert {r["metric"] for r in recs if r["runner"] == "fake-sleep"} >= {"fwd_ms", "fwdbwd_ms", "epoch_s"}
    assert (run_dir / "logs" / "c1--fake-raise--bench.log").read_text().count("Traceback") == 1
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, small_shd):
    cases = [f"c{i}" for i in range(4)]
    suite = write_suite(tmp_path / "s.yaml", cases, ["fake-sleep"], epochs=4)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "snnbench", "run", "--suite", str(suite), "--data-dir",
                             str(small_shd), "--out", str(out)], env={**os.environ, **ENV}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(out.glob("*/records.jsonl"))
        text = files[0].read_text() if files else ""
        if text.count('"metric": "job"') >= 2 and '"metric": "fwd_ms"' in text.split('"metric": "job"')[-1]:
            break  # two jobs finished and the third is part-way
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir, before = records_of(out)
    finished = {r["case"] for r in before if r["metric"] == "job"}
    assert 2 <= len(finished) < len(cases)
    p = run_cli("run", "--resume", str(run_dir))
    assert p.returncode == 0, p.stderr + p.stdout
    assert f"resuming {len(cases) - len(finished)} unfinished job(s)" in p.stdout
    _, after = records_of(out)
    counts = Counter((r["case"], r["metric"]) for r in after)
    for case in cases:
        for metric in ("fwd_ms", "fwdbwd_ms", "epoch_s", "test_acc", "job"):
            assert counts[(case, metric)] == 1, (case, metric, counts[(case, metric)])
    # the finished jobs' records are the very same ones as before the kill
    kept = [r for r in before if r["case"] in finished]
    assert all(r in after for r in kept)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"][0]["finished_jobs"] == len(finished)
    p = run_cli("run", "--resume", str(run_dir))
    assert p.returncode == 2 and "already complete" in p.stderr


def test_unstable_flag():
    from snnbench.harness.measure import stats_with_flag

    assert stats_with_flag(list(np.linspace(1, 1.01, 10)), 0.1)["unstable"] is False
    assert stats_with_flag([1, 1, 1, 5, 1, 1], 0.1)["unstable"] is True


def test_workers_compile_cold(tmp_path):
    """compile_s is a first compile: every worker gets its own empty compile caches."""
    from snnbench.harness.job import _job_env

    e1, e2 = _job_env(str(tmp_path / "a")), _job_env(str(tmp_path / "b"))
    assert e1["TORCHINDUCTOR_CACHE_DIR"] != e2["TORCHINDUCTOR_CACHE_DIR"]
    assert e1["TORCHINDUCTOR_CACHE_DIR"].startswith(str(tmp_path / "a"))
    assert e1["TRITON_CACHE_DIR"].startswith(str(tmp_path / "a"))
    assert e1["JAX_ENABLE_COMPILATION_CACHE"] == "false"
