"""The Ray executor: the same records as the local executor, lost tasks recorded, jobs no node can
run skipped, and a two-node cluster (slow)."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from .test_harness import ENV, ROOT, write_suite

ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray (pip install 'snnbench[ray]')")

# One cluster's settings for every process of a test: Ray's token authentication otherwise differs
# between a head started by one process and a driver started by another.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def run_cli(*args, env_extra=None):
    env = {**os.environ, **ENV, **RAY_ENV, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "snnbench", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)


def the_run(out):
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    return run_dir, records, json.loads((run_dir / "manifest.json").read_text())


def comparable(records):
    """What must not depend on the executor: every record's identity and status, the parity verdicts,
    and the accuracies of the reference (deterministic on the CPU)."""
    out = Counter()
    for r in records:
        key = (r["case"], r["runner"], r["metric"], r["status"])
        if r["metric"] == "parity":
            key += (r.get("value"),)
        if r["metric"] == "epoch_s" and r["runner"] == "reference":
            key += (tuple(round(p["test_acc"], 6) for p in r["extra"]["curve"]),)
        out[key] += 1
    return out


def test_ray_executor_gives_the_local_executors_records(tmp_path, small_shd):
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["reference", "torch"], epochs=2)
    common = ["run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report"]
    local = run_cli(*common, "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    # ship the data through Ray's object store, as for nodes that cannot see the driver's files
    remote = run_cli(*common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-ship-data", "always")
    assert remote.returncode == 0, remote.stderr
    _, local_records, _ = the_run(tmp_path / "local")
    run_dir, ray_records, manifest = the_run(tmp_path / "ray")
    assert comparable(ray_records) == comparable(local_records)
    assert all(r["status"] == "ok" for r in ray_records), [r for r in ray_records if r["status"] != "ok"]
    executor = manifest["executor"]
    assert executor["name"] == "ray" and executor["ship_data"] == "always"
    (node,) = executor["nodes"].values()
    assert sorted(node["jobs"]) == ["a/reference", "a/torch"] and node["environment"]["python"]
    # logs came back to the driver's run directory, and the records point there
    logs = {r["log"] for r in ray_records if r.get("log")}
    assert logs and all(log.startswith(str(run_dir / "logs")) and os.path.exists(log) for log in logs)
    assert "on node" in remote.stdout
    # so did the trained weights: the ones the local run saved (same seed, same data order)
    weights = sorted({r["weights"] for r in ray_records if r.get("weights")})
    assert weights == ["weights/a--reference.npz", "weights/a--torch.npz"]
    (local_dir,) = (tmp_path / "local").iterdir()
    import numpy as np

    for rel in weights:
        with np.load(run_dir / rel) as theirs, np.load(local_dir / rel) as ours:
            assert set(theirs.files) == set(ours.files)
            for k in ours.files:
                np.testing.assert_allclose(theirs[k], ours[k], rtol=1e-5, atol=1e-6)


def test_a_killed_ray_task_is_a_crashed_job_and_the_rest_complete(tmp_path, small_shd):
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["fake-kill-parent", "fake-sleep"], epochs=1)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report", "--no-parity",
                "--out", str(tmp_path / "out"), "--executor", "ray", "--ray-cpus-per-job", "1")
    assert p.returncode == 0, p.stderr
    _, records, manifest = the_run(tmp_path / "out")
    jobs = {r["runner"]: r for r in records if r["metric"] == "job"}
    assert jobs["fake-kill-parent"]["status"] == "crashed"
    assert "Ray task died" in jobs["fake-kill-parent"]["reason"], jobs["fake-kill-parent"]
    assert jobs["fake-sleep"]["status"] == "ok"
    assert {r["metric"] for r in records if r["runner"] == "fake-sleep"} >= {"fwd_ms", "fwdbwd_ms", "epoch_s"}
    assert manifest["status"] == "complete" and manifest["executor"]["cpus_per_job"] == 1


def test_a_job_no_node_can_run_is_skipped_with_the_reason(tmp_path, small_shd):
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["fake-sleep"], epochs=1)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report", "--device", "gpu",
                "--out", str(tmp_path / "out"), "--executor", "ray")
    assert p.returncode == 0, p.stderr
    _, records, _ = the_run(tmp_path / "out")
    (job,) = [r for r in records if r["metric"] == "job"]
    assert job["status"] == "skipped" and "no node of the Ray cluster offers" in job["reason"] and "GPU" in job["reason"]


def test_ray_options_need_the_ray_executor(tmp_path):
    p = run_cli("run", "--suite", "shd", "--quick", "--ray-address", "127.0.0.1:1", "--out", str(tmp_path))
    assert p.returncode == 2 and p.stderr.strip() == "snnbench: error: --ray-address needs --executor ray"
    assert not any(tmp_path.iterdir())


def test_an_unreachable_ray_cluster_is_one_error_line(tmp_path, small_shd):
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["fake-sleep"], epochs=1)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report", "--out",
                str(tmp_path / "out"), "--executor", "ray", "--ray-address", "127.0.0.1:9")
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("snnbench: error: cannot start Ray on 127.0.0.1:9") and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()  # refused before a run directory was made


@pytest.mark.slow
def test_two_node_cluster_runs_the_suite(tmp_path, small_shd, monkeypatch):
    """A head and a second node on localhost (each its own raylet, one CPU each): the jobs spread
    over both, the data shipped to them, every job ok."""
    from ray.cluster_utils import Cluster

    for k, v in {**RAY_ENV, **ENV}.items():
        monkeypatch.setenv(k, v)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        suite = write_suite(tmp_path / "suite.yaml", ["a"], ["reference", "torch"], epochs=1)
        p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report", "--no-parity",
                    "--out", str(tmp_path / "out"), "--executor", "ray", "--ray-address", cluster.address,
                    "--ray-ship-data", "always")
    finally:
        cluster.shutdown()
    assert p.returncode == 0, p.stderr
    _, records, manifest = the_run(tmp_path / "out")
    assert [r["status"] for r in records if r["metric"] == "job"] == ["ok", "ok"]
    executor = manifest["executor"]
    assert len(executor["cluster"]) == 2
    assert len(executor["nodes"]) == 2, executor["nodes"]  # one job per single-CPU node, at the same time


def test_resume_finishes_a_ray_run_on_ray(tmp_path, small_shd):
    """--resume of a run that used Ray runs the unfinished jobs on Ray again, keeping the finished ones."""
    suite = write_suite(tmp_path / "suite.yaml", ["a", "b"], ["fake-sleep"], epochs=1)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--no-report", "--out",
                str(tmp_path / "out"), "--executor", "ray", "--ray-cpus-per-job", "1")
    assert p.returncode == 0, p.stderr
    run_dir, records, manifest = the_run(tmp_path / "out")
    # as if the run had been stopped during job b: its job record never written
    kept = [r for r in records if not (r["case"] == "b" and r["metric"] == "job")]
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    p = run_cli("run", "--resume", str(run_dir), "--no-report")
    assert p.returncode == 0, p.stderr
    _, records, manifest = the_run(tmp_path / "out")
    jobs = Counter((r["case"], r["status"]) for r in records if r["metric"] == "job")
    assert jobs == Counter({("a", "ok"): 1, ("b", "ok"): 1})
    assert manifest["executor"]["name"] == "ray" and manifest["executor"]["cpus_per_job"] == 1
    assert [job for node in manifest["executor"]["nodes"].values() for job in node["jobs"]] == ["b/fake-sleep"]
