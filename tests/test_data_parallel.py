"""Data-parallel reference: the batch sharded over forced host devices computes what one device
computes, trains to the same accuracy, and the records and report say how it ran."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from snnbench.errors import SnnbenchError
from snnbench.results.summary import data_parallel_scaling, summary_rows
from snnbench.spec import load_suite

from .test_harness import ROOT, run_cli, write_suite

pytest.importorskip("haiku", reason="the reference needs dm-haiku")

# Runs in a fresh interpreter: the device count is fixed when JAX starts.
EQUIVALENCE = r"""
import dataclasses, json, sys
import numpy as np
from snnbench.data import DataSource, load_dataset
from snnbench.runners import get_runner_class
from snnbench.spec import load_suite

case = load_suite("shd", quick=True).cases[0]
case = dataclasses.replace(case, spec=dataclasses.replace(case.spec, batch=32, epochs=2, train_samples=256,
                                                           test_samples=128))
rng = np.random.default_rng(0)
x = (rng.random((32, case.spec.time_steps, case.network.inputs)) < 0.05).astype(np.float32)
y = rng.integers(0, 20, 32)
train, test = load_dataset(case.spec, DataSource(sys.argv[1], True, ""))
out = {}
for n in (1, 4):
    c = dataclasses.replace(case, spec=dataclasses.replace(case.spec, devices=n))
    r = get_runner_class("reference")()
    r.build(c, "cpu", 0)
    g = r.forward_backward(x, y)
    batch = r.prepare_batch(x, y)
    (loss, _), grads = r._grad_timed(r.params, *batch)  # the packed path training and timing use
    r.stage(train, test)
    r.compile()
    epochs = [r.train_epoch(e) for e in range(2)]
    ev = r.evaluate()
    out[n] = {"loss": g.loss, "packed_loss": float(loss), "grads": {k: v.tolist() for k, v in g.grads.items()},
              "packed_grads": {k: np.asarray(v).tolist() for k, v in r._from_params(grads).items()},
              "epoch_losses": [e.loss for e in epochs], "test_acc": ev.accuracy,
              "input_sharding": str(batch[0].sharding),
              "all_reduce": "all-reduce" in r._epoch.as_text(),
              "extra": r.info().extra.get("data_parallel")}
print(json.dumps(out))
"""


def test_sharded_loss_gradients_and_training_equal_one_device(small_shd):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", EQUIVALENCE, str(small_shd)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    import numpy as np

    res = json.loads(p.stdout.strip().splitlines()[-1])
    one, four = res["1"], res["4"]
    assert four["input_sharding"].startswith("NamedSharding") and "'data'" in four["input_sharding"]
    assert four["all_reduce"] and not one["all_reduce"]  # the gradients really are all-reduced
    assert four["extra"]["devices"] == 4 and four["extra"]["per_device_batch"] == 8 and one["extra"] is None
    for a, b in ((one["loss"], four["loss"]), (one["packed_loss"], four["packed_loss"])):
        assert abs(a - b) <= 1e-5 * abs(a)
    for key in ("grads", "packed_grads"):
        for name, g1 in one[key].items():
            g1, g4 = np.asarray(g1), np.asarray(four[key][name])
            assert np.max(np.abs(g1 - g4)) <= 1e-5 * np.max(np.abs(g1)) + 1e-9, name
    np.testing.assert_allclose(four["epoch_losses"], one["epoch_losses"], rtol=1e-4)
    assert abs(four["test_acc"] - one["test_acc"]) <= 1.0 / 128 + 1e-9  # at most one test sample decided otherwise


def test_a_data_parallel_case_runs_through_the_harness(tmp_path, small_shd):
    """The worker gets forced host devices for a CPU case; records carry devices and per-device batch;
    a runner without data parallelism is skipped with the reason."""
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["reference", "torch"], epochs=1)
    data = __import__("yaml").safe_load(suite.read_text())
    data["cases"] = [{"id": "dp", "devices": 2, "device": "cpu"}, {"id": "one", "device": "cpu"}]
    suite.write_text(__import__("yaml").safe_dump(data))
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "out"),
                "--no-report", "--no-parity")
    assert p.returncode == 0, p.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["case"] == "dp" and r["runner"] == "reference" and r["metric"] == "epoch_s")
    assert epoch["status"] == "ok" and epoch["shape"]["devices"] == 2 and epoch["shape"]["per_device_batch"] == 8
    facts = epoch["runner_extra"]["data_parallel"]
    assert facts["devices"] == 2 and "virtual_host_devices" in facts
    skipped = next(r for r in records if r["case"] == "dp" and r["runner"] == "torch" and r["metric"] == "run")
    assert skipped["status"] == "skipped" and "data-parallel" in skipped["reason"]
    points = data_parallel_scaling(summary_rows(records))
    dp = next(q for q in points if q["case"] == "dp")
    assert dp["devices"] == 2 and dp["strong_speedup"] > 0 and dp["samples_per_s"] > 0
    pytest.importorskip("matplotlib", reason="the report needs matplotlib")
    p = run_cli("report", str(run_dir), "-o", str(tmp_path / "report.html"))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "report.html").read_text()
    assert "Data-parallel scaling" in page and 'alt="data-parallel throughput"' in page
    assert "virtual CPU devices" in page


def test_scaling_rows_compare_with_one_device():
    rows = [{"suite": "s", "case": c, "runner": "reference", "devices": d, "global_batch": g, "per_device_batch": g // d,
             "epoch_s": t, "epoch_samples": 1024} for c, d, g, t in
            (("g1", 1, 128, 2.0), ("g2", 2, 128, 1.25), ("p1", 1, 64, 1.5), ("p2", 2, 128, 1.25))]
    rows[3]["case"] = "p2"
    points = {p["case"]: p for p in data_parallel_scaling(rows)}
    assert points["g2"]["strong_speedup"] == pytest.approx(1.6) and points["g2"]["strong_efficiency"] == pytest.approx(0.8)
    # the same per-device batch (64) at one device: 1024 / 1.5 samples/s
    assert points["g2"]["weak_ratio"] == pytest.approx((1024 / 1.25) / (1024 / 1.5))
    assert "strong_speedup" in points["g1"] and points["g1"]["strong_speedup"] == 1.0
    assert data_parallel_scaling([{**r, "devices": 1} for r in rows[:1]]) == []


@pytest.mark.parametrize("fields, message", [
    ({"devices": 0}, "devices: must be >= 1"),
    ({"devices": 3, "batch": 128}, "must split evenly over 3 devices"),
])
def test_bad_device_counts_are_rejected(tmp_path, fields, message):
    suite = write_suite(tmp_path / "suite.yaml", ["a"], ["reference"])
    data = __import__("yaml").safe_load(suite.read_text())
    data["cases"] = [{"id": "a", **fields}]
    suite.write_text(__import__("yaml").safe_dump(data))
    with pytest.raises(SnnbenchError, match=message):
        load_suite(str(suite))


def test_the_scaling_suite_pairs_global_and_per_device_batches():
    cases = {c.id: c.spec for c in load_suite("scaling").cases}
    assert {(s.devices, s.batch) for s in cases.values()} == {(1, 128), (2, 128), (4, 128), (1, 32), (2, 64)}
    assert {s.batch // s.devices for s in cases.values() if s.batch != 128 or s.devices == 4} == {32}
    quick = load_suite("scaling", quick=True)
    assert all(dataclasses.asdict(c.spec)["epochs"] == 1 for c in quick.cases)
