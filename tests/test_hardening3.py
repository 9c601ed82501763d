"""Hostile input and faults, round 3 (issue 35): one test per case seen, grouped by the class of fault
each belongs to. Each class is fixed by one mechanism, so the cases here are examples of it:

1. a resumed run is the run that was started (the manifest holds the resolved suite, absolute paths and
   a fingerprint of the data; conflicting flags are refused; a job whose records are incomplete runs
   again; a full disk is reported as such and leaves the run resumable);
2. input sizes are checked before they cost memory or time (an estimate of what a case, a dataset or a
   NIR graph needs against the machine; YAML read with bounds);
3. data that would give a wrong result is refused (a dataset's contents validated once, before any job);
4. names made from user text never collide or escape (one naming rule, uniqueness, no empty lists, no
   symbolic link followed inside a run directory);
5. every command keeps the one-line promise (and checks its outputs before writing any);
6. workers die with their parent (the kernel's parent-death signal);
7. timing checks that survive a busy machine (the ratio checks apart, the machine's load recorded).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from snnbench.errors import SnnbenchError
from snnbench.results.store import RunDir

from .conftest import tiny_network_yaml
from .test_harness import ENV, ROOT, records_of
from .test_hardening import _workers_of, one_error_line


# ------------------------------------------------------------------------------------------ helpers
def fast_suite(path: Path, cases=("c0",), runners=("fake-sleep",), network=None, suite="h3", **defaults):
    """A suite of the fake runners whose jobs take a second: one timing sample, one epoch."""
    data = {
        "suite": suite, "runners": list(runners),
        "defaults": {"time_steps": 16, "channels": 32, "batch": 16, "epochs": 1, "timeout_s": 120,
                     "train_samples": 64, "test_samples": 32, **defaults},
        "timing": {"warmup": 0, "min_repeats": 1, "min_time_s": 0.0},
        "network": network or tiny_network_yaml(), "cases": [{"id": c} for c in cases],
    }
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args, cwd=ROOT, env_extra=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "snnbench", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **ENV, **(env_extra or {})}, cwd=cwd, timeout=timeout)


def hostile(*args, timeout=60, mem_gb=None, cwd=ROOT):
    """The command line on input that may hang or grow without bound: its own process group, killed
    (with everything it started) after ``timeout`` s (``returncode`` None), and an address-space cap."""
    def limit():
        if mem_gb:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (int(mem_gb * 2**30),) * 2)

    proc = subprocess.Popen([sys.executable, "-m", "snnbench", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV}, cwd=cwd,
                            start_new_session=True, preexec_fn=limit)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return subprocess.CompletedProcess(proc.args, code, out, err)


def interrupt(run_dir: Path, case: str = "c0", status: str = "interrupted") -> None:
    """Drop ``case``'s job record and mark the run ``status``: as a run killed before that job ended."""
    path = run_dir / "records.jsonl"
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs if not (r["case"] == case and r["metric"] == "job")))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = status
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def copy_shd(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "SHD", dst / "SHD")
    return dst


@pytest.fixture(scope="module")
def one_job(tmp_path_factory, small_shd):
    """A finished one-job run of the fake sleep runner, made from its own folder with relative paths
    (``--suite s.yaml --data-dir data --out r``), as a user would."""
    base = tmp_path_factory.mktemp("h3-one-job")
    copy_shd(small_shd, base / "data")
    fast_suite(base / "s.yaml")
    p = cli("run", "--suite", "s.yaml", "--data-dir", "data", "--out", "r", "--no-report", "--no-parity", cwd=base)
    assert p.returncode == 0, p.stderr + p.stdout
    (run_dir,) = (base / "r").iterdir()
    return run_dir


@pytest.fixture
def run_copy(tmp_path, one_job):
    """A copy of :func:`one_job`'s run directory (its suite and data stay where they were)."""
    dst = tmp_path / "runs" / one_job.name
    shutil.copytree(one_job, dst)
    return dst


def metric_counts(run_dir: Path) -> Counter:
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines() if line.strip()]
    return Counter((r["case"], r["runner"], r["metric"]) for r in recs)


# 1 ---------------------------------------------------------------- a resumed run is the run started
def test_resume_from_another_directory_runs_the_suite_and_data_it_started_with(tmp_path, run_copy, one_job):
    interrupt(run_copy)
    elsewhere = tmp_path / "elsewhere"  # the same relative names, holding another suite and other data
    elsewhere.mkdir()
    other = tiny_network_yaml()
    other["layers"][0]["out"] = 48
    fast_suite(elsewhere / "s.yaml", cases=["c0", "x9"], network=other)
    from snnbench.data.synthetic_shd import write_synthetic_shd

    write_synthetic_shd(elsewhere / "data", n_train=64, n_test=32, seed=11)
    before = [json.loads(line) for line in (one_job / "records.jsonl").read_text().splitlines()]
    p = cli("run", "--resume", run_copy, "--no-report", cwd=elsewhere)
    assert p.returncode == 0, p.stderr + p.stdout
    after = [json.loads(line) for line in (run_copy / "records.jsonl").read_text().splitlines()]
    assert {r["case"] for r in after} == {"c0"}
    old = next(r for r in before if r["metric"] == "fwd_ms")
    new = next(r for r in after if r["metric"] == "fwd_ms")
    assert new["shape"] == old["shape"] and new["data"] == old["data"]
    assert str(one_job.parent.parent / "data") in new["data"]["note"]


def test_resume_is_refused_when_the_data_changed_since_the_run_started(tmp_path, small_shd):
    data = copy_shd(small_shd, tmp_path / "data")
    suite = fast_suite(tmp_path / "s.yaml")
    p = cli("run", "--suite", suite, "--data-dir", data, "--out", tmp_path / "r", "--no-report", "--no-parity")
    assert p.returncode == 0, p.stderr + p.stdout
    run_dir, _ = records_of(tmp_path / "r")
    interrupt(run_dir)
    from snnbench.data.synthetic_shd import write_synthetic_shd

    write_synthetic_shd(tmp_path / "other", n_train=256, n_test=128, seed=9)
    shutil.copy(tmp_path / "other" / "SHD" / "shd_train.h5", data / "SHD" / "shd_train.h5")
    p = cli("run", "--resume", run_dir, "--no-report")
    one_error_line(p, "changed since the run started")
    assert "job" not in {k[2] for k in metric_counts(run_dir)}


@pytest.mark.parametrize("flag", [
    ["--epochs", "5"], ["--seed", "7"], ["--runners", "fake-raise"], ["--device", "tpu"], ["--cases", "zz*"],
    ["--quick"], ["--suite", "shd"], ["--data-dir", "/tmp"], ["--out", "/tmp/elsewhere"],
], ids=lambda f: f[0])
def test_run_settings_given_with_resume_are_refused(run_copy, flag):
    interrupt(run_copy)
    p = cli("run", "--resume", run_copy, *flag, "--no-report")
    one_error_line(p, flag[0], "--resume")
    assert ("c0", "fake-sleep", "job") not in metric_counts(run_copy)


def test_settings_equal_to_the_runs_own_are_accepted_with_resume(run_copy):
    interrupt(run_copy)
    p = cli("run", "--resume", run_copy, "--no-parity", "--no-report", "--runners", "fake-sleep")
    assert p.returncode == 0, p.stderr + p.stdout
    assert metric_counts(run_copy)[("c0", "fake-sleep", "job")] == 1


@pytest.mark.parametrize("status", ["interrupted", "complete"])
def test_a_job_whose_record_line_was_corrupted_runs_again(run_copy, status):
    path = run_copy / "records.jsonl"
    lines = path.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if '"metric": "fwd_ms"' in line)
    lines[i] = lines[i][: len(lines[i]) // 2] + "\x00garbage"  # cut in the middle of the file
    path.write_text("\n".join(lines) + "\n")
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["status"] = status
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    p = cli("run", "--resume", run_copy, "--no-report")
    assert p.returncode == 0, p.stderr + p.stdout
    counts = metric_counts(run_copy)
    for metric in ("fwd_ms", "fwdbwd_ms", "epoch_s", "test_acc", "job"):
        assert counts[("c0", "fake-sleep", metric)] == 1, (metric, counts)
    assert json.loads((run_copy / "manifest.json").read_text())["status"] == "complete"
    p = cli("run", "--resume", run_copy, "--no-report")
    one_error_line(p, "already complete")


FULL_DISK = r"""
import json, os, pathlib, subprocess, sys
root, suite, data = map(pathlib.Path, sys.argv[1:4])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], check=True)

def run(*args, **env):
    p = subprocess.run([sys.executable, "-m", "snnbench", *args], capture_output=True, text=True,
                       env={**os.environ, **env})
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}

def state(run_dir):
    records = run_dir / "records.jsonl"
    return {"manifest": json.loads((run_dir / "manifest.json").read_text()),
            "files": sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")),
            "records": records.read_text() if records.exists() else ""}

first = run("run", "--suite", str(suite), "--data-dir", str(data), "--out", str(root / "r"), "--no-report",
            "--no-parity", SNNBENCH_TEST_FILL=str(root / "filler"))
(run_dir,) = (root / "r").iterdir()
out = {"first": first, "after_first": state(run_dir)}
(root / "filler").unlink()  # the user frees space
out["second"] = run("run", "--resume", str(run_dir), "--no-report")
out["after_second"] = state(run_dir)
print("@@" + json.dumps(out))
"""


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs 'unshare -rm' (a user and mount namespace) for a small tmpfs")
def test_a_full_disk_is_reported_as_such_and_leaves_the_run_resumable(tmp_path, small_shd):
    root = tmp_path / "disk"
    root.mkdir()
    suite = fast_suite(tmp_path / "s.yaml", runners=["fake-sleep", "fake-fill"])
    p = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK, str(root), str(suite), str(small_shd)],
                       capture_output=True, text=True, env={**os.environ, **ENV}, cwd=ROOT, timeout=600)
    assert p.returncode == 0 and "@@" in p.stdout, p.stderr[-3000:]
    out = json.loads(p.stdout.split("@@", 1)[1])
    first, state = out["first"], out["after_first"]
    one_error_line(subprocess.CompletedProcess([], first["rc"], first["stdout"], first["stderr"]),
                   "no space left on device", "--resume")
    assert state["manifest"]["status"] == "interrupted", state["manifest"]["status"]
    assert not [f for f in state["files"] if f.endswith(".tmp") or ".tmp." in f or f.startswith("scratch")], state
    recs = [json.loads(line) for line in state["records"].splitlines() if line.strip()]
    assert not [r for r in recs if r["runner"] == "fake-fill" and r["metric"] == "job"]
    assert not [r for r in recs if r["status"] == "crashed"]
    second = out["second"]
    assert second["rc"] == 0, second["stderr"] + second["stdout"]
    recs = [json.loads(line) for line in out["after_second"]["records"].splitlines()]
    counts = Counter((r["runner"], r["metric"]) for r in recs)
    assert counts[("fake-sleep", "job")] == counts[("fake-fill", "job")] == 1
    assert all(n == 1 for n in counts.values()), counts
    assert out["after_second"]["manifest"]["status"] == "complete"


# 2 ------------------------------------------------------------------- sizes checked before they cost
@pytest.mark.parametrize("field, value", [("hidden", 10**10), ("time_steps", 10**9), ("channels", 10**10)])
def test_a_case_too_large_for_the_machine_is_refused_before_it_runs(tmp_path, small_shd, field, value):
    network = tiny_network_yaml()
    extra = {}
    if field == "hidden":
        network["layers"][0]["out"] = value
    else:
        extra[field] = value
    suite = fast_suite(tmp_path / "s.yaml", network=network, **extra)
    p = hostile("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity",
                timeout=120)
    one_error_line(p, "case c0 needs at least", "memory")
    assert not (tmp_path / "r").exists()


def test_a_case_above_the_suites_memory_limit_is_refused(tmp_path, small_shd):
    network = tiny_network_yaml()
    network["layers"][0]["out"] = 10**6  # ~3 GB of weights, optimizer state and activations
    suite = fast_suite(tmp_path / "s.yaml", network=network)
    data = yaml.safe_load(suite.read_text())
    data["memory_limit_gb"] = 1
    suite.write_text(yaml.safe_dump(data))
    p = hostile("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity",
                timeout=120)
    one_error_line(p, "memory_limit_gb")
    assert not (tmp_path / "r").exists()


def _bomb(levels: int = 9) -> tuple[str, str]:
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"x-{names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\n", names[-1]


@pytest.mark.parametrize("where", ["description", "id"])
def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path, small_shd, where):
    suite = fast_suite(tmp_path / "s.yaml")
    bomb, top = _bomb()
    text = suite.read_text()
    if where == "description":
        text += f"description: *{top}\n"
    else:
        text = text.replace("- id: c0", f"- id: *{top}")
    suite.write_text(bomb + text)
    p = hostile("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", mem_gb=2, timeout=60)
    one_error_line(p, "alias")
    assert not (tmp_path / "r").exists()


def test_a_huge_suite_document_is_refused(tmp_path, small_shd):
    suite = fast_suite(tmp_path / "s.yaml")
    suite.write_text(suite.read_text() + "# " + "x" * (5 * 2**20) + "\n")
    p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r")
    one_error_line(p, "larger than")
    assert not (tmp_path / "r").exists()


def test_a_sweep_of_too_many_cases_is_refused():
    from snnbench.spec import parse_suite

    data = {"suite": "s", "network": tiny_network_yaml(), "defaults": {"channels": 32},
            "cases": [{"id": "c", "sweep": {"seed": list(range(100_000))}}]}
    with pytest.raises(SnnbenchError, match="cases"):
        parse_suite(data, "s.yaml")


@pytest.mark.parametrize("command", ["run", "publish"])
def test_a_fifo_as_a_suite_or_profile_file_is_refused_without_blocking(tmp_path, command):
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    args = ["run", "--suite", fifo, "--out", tmp_path / "r"] if command == "run" else \
        ["publish", "--profile", fifo, "--render-only", "--results", tmp_path / "res", "--reports", tmp_path / "rep"]
    p = hostile(*args, timeout=20)
    one_error_line(p, "not a regular file")


def _tiny_case():
    from snnbench.spec import parse_suite

    return parse_suite({"suite": "t", "defaults": {"time_steps": 16, "channels": 32, "batch": 16},
                        "network": tiny_network_yaml(), "cases": [{"id": "c"}]}, "t.yaml").cases[0]


def _nir_file(path: Path, weights=None):
    from snnbench.interop import nir_graph
    from snnbench.spec import init_weights

    case = _tiny_case()
    w = weights or init_weights(case.network, 0)
    nir_graph.write(path, nir_graph.to_nir(case.network, w, 0.001))
    return path


def test_a_nir_file_declaring_huge_tensors_is_refused_before_reading_them(tmp_path):
    path = _nir_file(tmp_path / "big.nir")
    with h5py.File(path, "a") as f:
        group = f["node/nodes/layers.0"]
        del group["weight"]
        group.create_dataset("weight", shape=(2**20, 2**20), dtype="f4", chunks=(256, 256), compression="gzip")
    assert path.stat().st_size < 2**20
    p = hostile("import", path, "-o", tmp_path / "o", mem_gb=3, timeout=60)
    one_error_line(p, "declares")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dataset", ["shd", "nmnist"])
def test_make_data_refuses_a_size_the_machine_cannot_hold(tmp_path, dataset):
    p = hostile("make-data", dataset, "--out", tmp_path / "d", "--train", "1000000000", "--test", "10",
                mem_gb=2, timeout=20)
    one_error_line(p, "1000000010 samples")
    assert not (tmp_path / "d").exists()


# 3 ------------------------------------------------------------- data that would give a wrong result
def _shd_with(tmp_path: Path, small_shd: Path, split: str, mutate) -> Path:
    from snnbench.data.synthetic_shd import write_split

    root = copy_shd(small_shd, tmp_path / "d")
    path = root / "SHD" / f"shd_{split}.h5"
    with h5py.File(path, "r") as f:
        times = [np.array(t) for t in f["spikes/times"][:]]
        units = [np.array(u) for u in f["spikes/units"][:]]
        labels = f["labels"][:].astype(np.int64)
        speakers = f["extra/speaker"][:]
    mutate(times, units, labels)
    write_split(path, times, units, labels, speakers, seed=0)
    return root


def _set(array_list, i, j, value):
    array_list[i] = array_list[i].copy()
    array_list[i][j] = value


SHD_FAULTS = {
    "label-above": ("train", lambda t, u, lab: lab.__setitem__(5, 25), "labels"),
    "label-negative": ("test", lambda t, u, lab: lab.__setitem__(5, -1), "labels"),
    "unit-700": ("train", lambda t, u, lab: _set(u, 5, 0, 700), "spikes/units"),
    "time-nan": ("train", lambda t, u, lab: _set(t, 5, 0, np.nan), "spikes/times"),
    "time-negative": ("train", lambda t, u, lab: _set(t, 5, 1, -0.5), "spikes/times"),
    "time-inf": ("test", lambda t, u, lab: _set(t, 5, 2, np.inf), "spikes/times"),
    "lengths-differ": ("train", lambda t, u, lab: t.__setitem__(5, t[5][:-3]), "spikes/units"),
}


@pytest.mark.parametrize("fault", list(SHD_FAULTS))
def test_an_shd_file_with_bad_contents_is_refused_naming_file_field_and_sample(tmp_path, small_shd, fault):
    split, mutate, field = SHD_FAULTS[fault]
    root = _shd_with(tmp_path, small_shd, split, mutate)
    suite = fast_suite(tmp_path / "s.yaml")
    p = cli("run", "--suite", suite, "--data-dir", root, "--out", tmp_path / "r", "--no-parity")
    one_error_line(p, f"shd_{split}.h5", field, "sample 5")
    assert not (tmp_path / "r").exists()


def test_an_all_nan_shd_set_is_refused(tmp_path, small_shd):
    def all_nan(times, units, labels):
        for i in range(len(times)):
            times[i] = np.full_like(times[i], np.nan)

    root = _shd_with(tmp_path, small_shd, "train", all_nan)
    suite = fast_suite(tmp_path / "s.yaml")
    p = cli("run", "--suite", suite, "--data-dir", root, "--out", tmp_path / "r", "--no-parity")
    one_error_line(p, "shd_train.h5", "spikes/times", "sample 0")


def test_a_network_with_fewer_outputs_than_the_datasets_classes_is_refused(tmp_path, small_shd):
    network = tiny_network_yaml()
    network["layers"][2]["out"] = 10  # SHD has 20 classes
    suite = fast_suite(tmp_path / "s.yaml", network=network)
    p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity")
    one_error_line(p, "20 classes")
    assert not (tmp_path / "r").exists()


def _nmnist_suite(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "suite": "n", "runners": ["fake-sleep"], "timing": {"warmup": 0, "min_repeats": 1, "min_time_s": 0.0},
        "defaults": {"dataset": "nmnist", "time_steps": 8, "batch": 8, "epochs": 1, "train_samples": 16,
                     "test_samples": 8},
        "network": {"layers": [{"type": "conv2d", "out": 2, "kernel": 5}, {"type": "lif"}, {"type": "flatten"},
                               {"type": "linear", "out": 10}, {"type": "li"}]},
        "cases": [{"id": "n0"}]}))
    return path


@pytest.mark.parametrize("fault", ["label-folder", "event-x"])
def test_an_nmnist_set_with_bad_contents_is_refused(tmp_path, small_nmnist, fault):
    root = tmp_path / "n"
    shutil.copytree(small_nmnist, root)
    first = sorted((root / "NMNIST" / "Train" / "3").glob("*.bin"))[0]
    if fault == "label-folder":
        (root / "NMNIST" / "Train" / "12").mkdir()
        shutil.move(first, root / "NMNIST" / "Train" / "12" / first.name)
        fragments = ["12", "label"]
    else:
        raw = bytearray(first.read_bytes())
        raw[5 * 3] = 40  # the fourth event's x
        first.write_bytes(bytes(raw))
        fragments = [first.name, "outside the 34x34 sensor"]
    p = cli("run", "--suite", _nmnist_suite(tmp_path / "n.yaml"), "--data-dir", root, "--out", tmp_path / "r")
    one_error_line(p, *fragments)
    assert not (tmp_path / "r").exists()


# 4 --------------------------------------------------------------- names from user text: one rule
def test_case_ids_that_differ_in_unsafe_characters_get_files_of_their_own(tmp_path, small_shd):
    suite = fast_suite(tmp_path / "s.yaml", cases=["a/b", "a_b"])
    p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity",
            "--no-report")
    assert p.returncode == 0, p.stderr + p.stdout
    run_dir, recs = records_of(tmp_path / "r")
    weights = {r["case"]: r["weights"] for r in recs if r["metric"] == "epoch_s"}
    assert set(weights) == {"a/b", "a_b"} and len(set(weights.values())) == 2
    assert all((run_dir / w).is_file() and (run_dir / w).parent == run_dir / "weights" for w in weights.values())
    logs = {r["case"]: r["log"] for r in recs if r["metric"] == "job"}
    assert len(set(logs.values())) == 2 and all(Path(p_).parent == run_dir / "logs" for p_ in logs.values())


@pytest.mark.parametrize("case_id", ["", "a\x00b", "a\nb", "\t"], ids=["empty", "nul", "newline", "tab"])
def test_an_id_that_cannot_name_a_file_is_refused(tmp_path, small_shd, case_id):
    suite = fast_suite(tmp_path / "s.yaml", cases=[case_id])
    p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity")
    one_error_line(p, "id")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--runners", "fake-sleep,fake-sleep"], "--runners"),
    (["--runners", ""], "--runners"),
    (["--runners", ","], "--runners"),
    (["--cases", ""], "--cases"),
    (["--cases", " , "], "--cases"),
    (["--cases", "c0,nope"], "'nope'"),
], ids=["runner-twice", "runners-empty", "runners-comma", "cases-empty", "cases-blank", "cases-unmatched"])
def test_empty_duplicated_or_unmatched_lists_are_refused(tmp_path, small_shd, args, fragment):
    suite = fast_suite(tmp_path / "s.yaml")
    p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity", *args)
    one_error_line(p, fragment)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/snnbench-abs-class", "a/b", ".", ""])
def test_publish_machine_class_cannot_leave_results_and_reports(tmp_path, name):
    p = cli("publish", "--render-only", "--machine-class", name, "--results", tmp_path / "res", "--reports",
            tmp_path / "rep")
    one_error_line(p, "--machine-class")
    assert not (tmp_path / "x").exists() and not Path("/tmp/snnbench-abs-class.html").exists()


@pytest.mark.parametrize("special", ["records.jsonl", "manifest.json", ".lock", "logs", "weights", "scratch"])
def test_symbolic_links_inside_a_run_directory_are_never_followed(tmp_path, run_copy, special):
    interrupt(run_copy)
    target = tmp_path / "outside"
    place = run_copy / special
    if place.is_dir():
        shutil.move(place, target)
    elif place.exists():
        shutil.copy(place, target)
        place.unlink()
    elif special == "scratch":
        target.mkdir()
    else:
        target.write_text("")
    place.symlink_to(target, target_is_directory=target.is_dir())

    def snapshot():
        if target.is_dir():
            return sorted((str(p.relative_to(target)), p.read_bytes()) for p in target.rglob("*") if p.is_file())
        return target.read_bytes()

    before = snapshot()
    p = cli("run", "--resume", run_copy, "--no-report")
    one_error_line(p, "symbolic link", special)
    assert snapshot() == before


# 5 ------------------------------------------------------------------------ the one-line promise
@pytest.mark.parametrize("command", ["run", "parity", "publish"])
def test_binary_garbage_as_a_suite_or_profile_is_one_line(tmp_path, command):
    garbage = tmp_path / "g.yaml"
    garbage.write_bytes(bytes(range(256)) * 64)
    args = {"run": ["run", "--suite", garbage, "--out", tmp_path / "r"],
            "parity": ["parity", "--suite", garbage],
            "publish": ["publish", "--profile", garbage, "--render-only", "--results", tmp_path / "res"]}[command]
    one_error_line(cli(*args), "g.yaml")


def test_import_of_a_graph_with_an_edge_to_a_missing_node_is_one_line(tmp_path):
    import nir

    from snnbench.interop import nir_graph
    from snnbench.spec import init_weights

    case = _tiny_case()
    graph = nir_graph.to_nir(case.network, init_weights(case.network, 0), 0.001)
    graph.edges = [(a, "nope" if b == "output" else b) for a, b in graph.edges]
    path = tmp_path / "g.nir"
    nir.write(str(path), graph)
    one_error_line(cli("import", path, "-o", tmp_path / "o"), "nope")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_import_refuses_weights_that_are_not_finite(tmp_path, value):
    from snnbench.spec import init_weights

    w = init_weights(_tiny_case().network, 0)
    w["layers.0.weight"][3, 4] = float(value)
    path = _nir_file(tmp_path / "w.nir", w)
    one_error_line(cli("import", path, "-o", tmp_path / "o"), "not finite", "layers.0")
    assert not (tmp_path / "o").exists()


@pytest.fixture
def trained_run(tmp_path, small_shd):
    """A run directory holding the reference's trained weights of a small SHD case (made directly)."""
    from snnbench.spec import case_to_dict, init_weights, parse_suite

    net = {"neuron": {"beta": 0.9, "threshold": 1.0}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": 24}, {"type": "lif"}, {"type": "linear", "out": 20},
                      {"type": "li"}]}
    case = parse_suite({"suite": "t", "defaults": {"time_steps": 32, "channels": 32, "batch": 16,
                                                   "test_samples": 64},
                        "network": net, "cases": [{"id": "c"}]}, "t.yaml").cases[0]
    run = RunDir.create(tmp_path / "results", "t")
    run.write_manifest({"suite": "t", "cases": [case_to_dict(case)], "status": "complete",
                        "data_dir": str(small_shd)})
    run.weights_dir.mkdir()
    np.savez(run.weights_dir / "c--reference.npz", **{k: v * 4 for k, v in init_weights(case.network, 2).items()})
    run.append({"suite": "t", "case": "c", "runner": "reference", "metric": "epoch_s", "status": "ok",
                "weights": "weights/c--reference.npz"})
    run.unlock()
    return run


@pytest.mark.parametrize("command", ["export", "import"])
def test_an_infinite_time_step_is_refused_like_nan(tmp_path, trained_run, command):
    if command == "export":
        p = cli("export", trained_run.path, "-o", tmp_path / "m.nir", "--dt", "inf")
    else:
        p = cli("import", _nir_file(tmp_path / "m.nir"), "-o", tmp_path / "o", "--dt", "inf")
    one_error_line(p, "--dt")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where, value", [("suite", -1), ("suite", 2**64), ("cli", "-1"), ("make-data", "-1")])
def test_a_seed_must_be_a_non_negative_integer_numpy_accepts(tmp_path, small_shd, where, value):
    if where == "make-data":
        p = cli("make-data", "shd", "--out", tmp_path / "d", "--train", "4", "--test", "4", "--seed", value)
    else:
        suite = fast_suite(tmp_path / "s.yaml", **({"seed": value} if where == "suite" else {}))
        extra = ["--seed", value] if where == "cli" else []
        p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity", *extra)
    one_error_line(p, "seed")
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_report_checks_every_output_before_writing_any(tmp_path, one_job):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "page.md").mkdir()  # the Markdown beside the page cannot be written
    p = cli("report", one_job, "-o", out / "page.html")
    one_error_line(p, "page.md")
    assert not (out / "page.html").exists() and not (out / "page.csv").exists()


def test_publish_checks_the_readme_before_writing_anything(tmp_path, one_job):
    class_dir = tmp_path / "results" / "cls"
    shutil.copytree(one_job, class_dir / one_job.name)
    readme = tmp_path / "README.md"
    readme.write_text("# a README without the headline block\n")
    p = cli("publish", "--render-only", "--machine-class", "cls", "--results", tmp_path / "results", "--reports",
            tmp_path / "reports", "--readme", readme)
    one_error_line(p, "headline")
    assert not (tmp_path / "reports").exists()
    assert readme.read_text() == "# a README without the headline block\n"


def test_nir_check_prints_one_line_per_framework_error_and_logs_the_traceback(trained_run, capsys):
    from snnbench.cli import main
    from snnbench.interop import frameworks

    def boom(*args):
        raise RuntimeError("the reader exploded\nwith a second line")

    fake = frameworks.NirFramework("boomfw", "numpy", boom, boom, "boomfw.read(graph)", "boomfw.write(net)")
    had = "FRAMEWORKS" in vars(frameworks)  # a module attribute, or one the module derives on each use
    old = vars(frameworks).get("FRAMEWORKS")
    frameworks.FRAMEWORKS = (fake,)
    try:
        assert main(["nir-check", str(trained_run.path), "--frameworks", "boomfw"]) == 0
    finally:
        if had:
            frameworks.FRAMEWORKS = old
        else:
            del frameworks.FRAMEWORKS
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err, out.err[-2000:]
    lines = [line for line in out.out.splitlines() if line.startswith("boomfw ") and "exploded" in line]
    assert len(lines) == 2 and not any("second line" in line for line in out.out.splitlines())
    log = trained_run.path / "logs" / "nir-check.log"
    assert log.is_file() and log.read_text().count("Traceback") >= 2 and "the reader exploded" in log.read_text()


# 6 ---------------------------------------------------------------------------- workers and parent
def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
    return found


def _dead(pid: int) -> bool:
    """Gone, or a zombie (dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def test_a_killed_parent_takes_its_worker_and_helpers_within_a_quarter_second(tmp_path, small_shd):
    """The worker hangs inside a call that holds the GIL (no Python thread of its own can run) after
    starting a helper process; ``kill -9`` of the run must end both within 0.25 s."""
    suite = fast_suite(tmp_path / "s.yaml", runners=["fake-hang-gil"], timeout_s=300)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "snnbench", "run", "--suite", str(suite), "--data-dir",
                             str(small_shd), "--out", str(out), "--no-report", "--no-parity"],
                            env={**os.environ, **ENV}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            dirs = list(out.glob("*"))
            workers = _workers_of(dirs[0]) if dirs else []
            helpers = [c for w in workers for c in _children(w)
                       if Path(f"/proc/{c}/cmdline").read_bytes().startswith(b"sleep")] if workers else []
            if workers and helpers:
                pids = workers + helpers
                break
            time.sleep(0.05)
        assert pids, "the worker and its helper never started"
        time.sleep(0.5)  # the worker is inside its GIL-holding call
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < 5.0 and not all(_dead(pid) for pid in pids):
            time.sleep(0.005)
        took = time.monotonic() - killed
        assert all(_dead(pid) for pid in pids), "the worker or its helper outlived its parent"
        assert took <= 0.25, f"the worker or its helper outlived the parent by {took:.2f} s"
    finally:
        proc.kill()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# 7 ----------------------------------------------------------------- timing checks on a busy machine
def test_the_ratio_checks_are_benchmarks_apart_from_the_test_run():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "not bench_check" in config["addopts"] and "--benchmark-disable" in config["addopts"]
    assert any(m.startswith("bench_check:") for m in config["markers"])
    for name in ("test_ratio_guard", "test_idiomatic", "test_compiled_vs_eager", "test_step_consistency"):
        source = (ROOT / "tests" / "benchmarks" / f"{name}.py").read_text()
        assert "pytestmark = pytest.mark.bench_check" in source, name
        assert "remeasured(" in source, name  # measured once more before failing
    for name in ("test_bench_reference", "test_bench_adapters"):  # timed by `make bench`, smoke-run by `make test`
        assert "bench_check" not in (ROOT / "tests" / "benchmarks" / f"{name}.py").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "\nbench-check:" in makefile and "-m bench_check" in makefile
    steps = [line.split()[:2] for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert steps.index(["make", "test"]) < steps.index(["make", "bench-check"])


def test_a_ratio_check_measures_once_more_before_failing():
    from .benchmarks.conftest import remeasured

    calls = []

    def measure(values):
        it = iter(values)
        return lambda: calls.append(1) or next(it)

    assert remeasured(measure([0.8]), lambda r: r <= 1.0) == 0.8 and len(calls) == 1
    calls.clear()
    assert remeasured(measure([1.4, 0.9]), lambda r: r <= 1.0) == 0.9 and len(calls) == 2
    calls.clear()
    assert remeasured(measure([1.4, 1.3, 0.1]), lambda r: r <= 1.0) == 1.3 and len(calls) == 2


def test_the_machines_load_is_computed_from_cpu_counters():
    from snnbench.harness.interference import CpuSample, machine_load, read_cpu_counters

    stat = ("cpu  1000 20 300 5000 40 5 6 70 0 0\ncpu0 500 10 150 2500 20 2 3 35 0 0\n"
            "intr 1 2 3\nctxt 99\n")
    busy, steal = read_cpu_counters(stat, ticks=100)
    assert busy == pytest.approx((1000 + 20 + 300 + 5 + 6) / 100) and steal == pytest.approx(0.7)
    quiet = machine_load(CpuSample(0.0, 10.0, 0.0, 1.0), CpuSample(2.0, 11.02, 0.0, 2.0), cpus=2)
    assert quiet["interference"] is False and quiet["other_cores"] == pytest.approx(0.01)
    busy_ = machine_load(CpuSample(0.0, 10.0, 0.0, 1.0), CpuSample(2.0, 13.0, 0.0, 2.0), cpus=2)
    assert busy_["interference"] is True and busy_["other_cores"] == pytest.approx(1.0)
    assert "other processes" in busy_["summary"]
    stolen = machine_load(CpuSample(0.0, 10.0, 0.0, 1.0), CpuSample(2.0, 11.0, 0.4, 2.0), cpus=2)
    assert stolen["interference"] is True and stolen["steal_fraction"] == pytest.approx(0.1)
    assert "steal" in stolen["summary"]


def test_records_measured_beside_a_busy_process_are_flagged(tmp_path, small_shd):
    suite = fast_suite(tmp_path / "s.yaml")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        p = cli("run", "--suite", suite, "--data-dir", small_shd, "--out", tmp_path / "r", "--no-parity",
                "--no-report")
    finally:
        busy.kill()
        busy.wait()
    assert p.returncode == 0, p.stderr + p.stdout
    _, recs = records_of(tmp_path / "r")
    assert all(isinstance(r.get("load"), dict) for r in recs), [r["metric"] for r in recs if "load" not in r]
    job = next(r for r in recs if r["metric"] == "job")
    assert job["load"]["interference"] is True and job["load"]["other_cores"] > 0.5, job["load"]
    assert "under interference" in p.stdout


def test_a_workers_helper_in_its_process_group_is_the_jobs_own_cpu_time():
    """The parity gate's reference process works while the worker imports: the job's, not interference."""
    from snnbench.harness.interference import group_cpu_s, process_cpu_s

    ticks = os.sysconf("SC_CLK_TCK")
    leader = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                               "c = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
                               "time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(1.5)
        assert process_cpu_s(leader.pid, ticks) < 0.5  # the leader sleeps; its busy child is unreaped
        assert group_cpu_s(leader.pid, ticks) > 0.5
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()
