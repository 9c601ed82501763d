"""Hostile input and faults: each test reproduces one way a user or the system broke snnbench (a
second writer, an escaping suite name, NaN fields, a cut record, console markup in ids, records that
are not records, malformed data files, unwritable paths, a killed parent, raw Markdown) and checks
the one-line error or the clean recovery that replaced it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml

from snnbench.errors import SnnbenchError
from snnbench.results.store import RunDir, read_records

from .conftest import tiny_network_yaml
from .test_harness import ENV, ROOT, records_of, run_cli, write_suite


def one_error_line(p, *fragments):
    assert p.returncode == 2, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snnbench: error: "), p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="session")
def _finished_run_template(tmp_path_factory, small_shd):
    base = tmp_path_factory.mktemp("hardening-run")
    suite = write_suite(base / "s.yaml", ["c0", "c1"], ["fake-sleep"], epochs=1)
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(base / "r"),
                "--no-report", "--no-parity")
    assert p.returncode == 0, p.stderr + p.stdout
    run_dir, _ = records_of(base / "r")
    return run_dir


@pytest.fixture
def finished_run(tmp_path, _finished_run_template):
    """A finished two-job run of the fake sleep runner (a copy), turned back into an interrupted
    one whose second job is unfinished."""
    import shutil

    run_dir = tmp_path / "r" / _finished_run_template.name
    shutil.copytree(_finished_run_template, run_dir)
    _, recs = records_of(tmp_path / "r")
    keep = [r for r in recs if not (r["case"] == "c1" and r["metric"] == "job")]
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["status"] = "interrupted"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


# 1 ------------------------------------------------------------------------------- one writer
def test_a_second_writer_of_a_run_directory_is_refused(finished_run):
    holder = RunDir.open(finished_run)
    holder.lock()  # as a run still going, or a first --resume, holds it
    try:
        p = run_cli("run", "--resume", str(finished_run))
        one_error_line(p, "being written by another snnbench process", f"pid {os.getpid()}")
    finally:
        holder.unlock()
    p = run_cli("run", "--resume", str(finished_run), "--no-report")
    assert p.returncode == 0, p.stderr + p.stdout
    _, recs = records_of(finished_run.parent)
    keys = [(r["case"], r["runner"], r["metric"]) for r in recs]
    assert len(keys) == len(set(keys))  # nothing duplicated


def test_two_resumes_at_the_same_instant_one_runs_one_is_refused(finished_run):
    cmd = [sys.executable, "-m", "snnbench", "run", "--resume", str(finished_run), "--no-report"]
    procs = [subprocess.Popen(cmd, env={**os.environ, **ENV}, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert 0 in [code for code, _ in results], results
    for code, err in results:
        assert "Traceback" not in err and code in (0, 2), (code, err)
        if code == 2:  # refused while the other writes, or after it completed the run
            assert "being written by another snnbench process" in err or "already complete" in err, err
    _, recs = records_of(finished_run.parent)
    keys = [(r["case"], r["runner"], r["metric"]) for r in recs]
    assert len(keys) == len(set(keys))


# 2 ----------------------------------------------------------------------------- suite names
@pytest.mark.parametrize("name", ["../../escaped", "/tmp/absolute", "a/b", "[/]x", ".hidden"])
def test_a_suite_name_cannot_place_the_run_outside_out(tmp_path, small_shd, name):
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    data = yaml.safe_load(suite.read_text())
    data["suite"] = name
    suite.write_text(yaml.safe_dump(data))
    out = tmp_path / "deep" / "er" / "r"
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(out))
    one_error_line(p, "not a valid suite name")
    assert not (tmp_path / "deep").exists() and not Path("/tmp/absolute").exists()


def test_run_directory_backstop(tmp_path):
    with pytest.raises(SnnbenchError, match="outside"):
        RunDir.create(tmp_path, "../x")


# 3 -------------------------------------------------------------------------- numeric fields
@pytest.mark.parametrize("field, value, fragment", [
    ("timeout_s", float("nan"), "finite"),
    ("timeout_s", -5, "must be > 0"),
    ("lr", float("inf"), "finite"),
    ("duration_s", float("nan"), "finite"),
    ("threshold", float("nan"), "finite"),
])
def test_non_finite_or_out_of_range_numbers_are_refused(tmp_path, small_shd, field, value, fragment):
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    data = yaml.safe_load(suite.read_text())
    if field == "threshold":
        data["network"]["neuron"]["threshold"] = value
    else:
        data["defaults"][field] = value
    suite.write_text(yaml.safe_dump(data))
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"))
    one_error_line(p, field, fragment)
    assert not (tmp_path / "r").exists()


def test_a_batch_larger_than_the_dataset_is_one_error(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    data = yaml.safe_load(suite.read_text())
    del data["defaults"]["train_samples"]
    data["defaults"]["batch"] = 1000  # small_shd has 256 training samples
    suite.write_text(yaml.safe_dump(data))
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(tmp_path / "r"))
    one_error_line(p, "batch 1000 is larger than the 256 training samples")


@pytest.mark.parametrize("threshold", ["nan%", "-50%", "inf", "lots"])
def test_compare_refuses_a_threshold_that_is_not_a_percentage(finished_run, threshold):
    p = run_cli("compare", str(finished_run), str(finished_run), f"--threshold={threshold}")
    one_error_line(p, "expected a percentage")


def test_parity_batch_zero_is_one_line():
    one_error_line(run_cli("parity", "--batch", "0"), "--batch must be at least 1")


# 4 ------------------------------------------------------------------------- a cut last line
def test_a_record_after_a_cut_line_is_not_lost(tmp_path):
    run = RunDir(tmp_path)
    run.append({"case": "a", "runner": "r", "metric": "m1", "status": "ok"})
    with open(tmp_path / "records.jsonl", "a") as f:
        f.write('{"case": "a", "runner": "r", "met')  # a writer killed mid-line
    run.append({"case": "a", "runner": "r", "metric": "m2", "status": "ok"})
    records, skipped = read_records(tmp_path / "records.jsonl")
    assert [r["metric"] for r in records] == ["m1", "m2"]
    assert skipped == [(2, "not JSON")]


def test_resume_reports_and_drops_a_cut_line(finished_run):
    with open(finished_run / "records.jsonl", "a") as f:
        f.write('{"case": "c1", "runner": "fake-sle')
    p = run_cli("run", "--resume", str(finished_run), "--no-report")
    assert p.returncode == 0, p.stderr + p.stdout
    assert "1 line(s) skipped (line" in p.stdout and "cut short" in p.stdout
    records, skipped = read_records(finished_run / "records.jsonl")
    assert not skipped
    assert sum(r["metric"] == "job" for r in records) == 2


# 5 ------------------------------------------------------------------------------- literal text
def test_markup_and_mathtext_in_ids_and_paths_are_printed_literally(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["c[/]0 $\\foo$ [bold]x"], ["fake-sleep"], epochs=2)
    out = tmp_path / "out [/] [red]"
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(out))
    assert p.returncode == 0, p.stderr + p.stdout
    assert "c[/]0 $\\foo$ [bold]x" in p.stdout and "out [/] [red]" in p.stdout
    run_dir, recs = records_of(out)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"
    assert any(r["metric"] == "epoch_s" for r in recs)
    page = out.parent / "reports" / f"{run_dir.name}.html"  # written by the run, beside --out
    assert page.exists() and "c[/]0 $\\foo$ [bold]x" in page.read_text()


# 6 ---------------------------------------------------------------------- records on reading
def test_lines_that_are_not_records_are_skipped_with_a_warning(finished_run, tmp_path):
    with open(finished_run / "records.jsonl", "a") as f:
        f.write('[1, 2]\n{"no": "case"}\n"text"\n{"case": "c", "runner": "r", "metric": "m", "status": "weird"}\n')
    p = run_cli("report", str(finished_run), "-o", str(tmp_path / "p.html"))
    assert p.returncode == 0, p.stderr
    assert "4 line(s) skipped" in p.stderr and "a JSON list" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("compare", str(finished_run), str(finished_run))
    assert "4 line(s) skipped" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("manifest", ["[]", "{}", '"text"', "{not json"])
@pytest.mark.parametrize("command", ["report", "compare", "resume"])
def test_a_manifest_that_is_not_a_run_manifest_is_one_error(finished_run, tmp_path, manifest, command):
    (finished_run / "manifest.json").write_text(manifest)
    args = {"report": ["report", str(finished_run), "-o", str(tmp_path / "p.html")],
            "compare": ["compare", str(finished_run), str(finished_run)],
            "resume": ["run", "--resume", str(finished_run)]}[command]
    one_error_line(run_cli(*args), "manifest.json")


# 7 ------------------------------------------------------------------------------ data files
def _copy_shd(src, dst):
    (dst / "SHD").mkdir(parents=True)
    for split in ("train", "test"):
        (dst / "SHD" / f"shd_{split}.h5").write_bytes((src / "SHD" / f"shd_{split}.h5").read_bytes())
    return dst


def test_a_truncated_test_split_is_caught_before_the_run(tmp_path, small_shd):
    root = _copy_shd(small_shd, tmp_path / "d")
    test = root / "SHD" / "shd_test.h5"
    test.write_bytes(test.read_bytes()[: test.stat().st_size // 2])
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(root), "--out", str(tmp_path / "r"))
    one_error_line(p, "shd_test.h5", "truncated or corrupt")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("bad", ["scalar", "group"])
def test_malformed_hdf5_structure_is_one_error(tmp_path, small_shd, bad):
    root = _copy_shd(small_shd, tmp_path / "d")
    with h5py.File(root / "SHD" / "shd_train.h5", "a") as f:
        del f["labels"]
        if bad == "scalar":
            f["labels"] = 3
        else:
            f.create_group("labels")
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(root), "--out", str(tmp_path / "r"))
    one_error_line(p, "shd_train.h5", "labels")


def test_a_corrupt_nmnist_marker_is_one_error(tmp_path, small_nmnist):
    import shutil

    root = tmp_path / "n"
    shutil.copytree(small_nmnist, root)
    marker = next((root / "NMNIST").glob("*.json"))
    marker.write_text("{cut")
    suite = tmp_path / "n.yaml"
    suite.write_text(yaml.safe_dump({"suite": "n", "runners": ["fake-sleep"],
                                     "defaults": {"dataset": "nmnist", "time_steps": 8, "batch": 8, "epochs": 1},
                                     "network": {"layers": [{"type": "conv2d", "out": 2, "kernel": 5}, {"type": "lif"},
                                                 {"type": "flatten"}, {"type": "linear", "out": 10},
                                                 {"type": "li"}]},
                                     "cases": [{"id": "n0"}]}))
    p = run_cli("run", "--suite", str(suite), "--data-dir", str(root), "--out", str(tmp_path / "r"))
    one_error_line(p, "corrupt marker")


# 8 ------------------------------------------------------------------------------- OS errors
def test_os_errors_are_one_line(tmp_path, finished_run, small_shd):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-sleep"])
    one_error_line(run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out", str(a_file)),
                   "a-file")
    one_error_line(run_cli("run", "--suite", str(suite), "--data-dir", str(small_shd), "--out",
                           "/proc/snnbench-cannot-write-here"))
    one_error_line(run_cli("report", str(finished_run), "-o", str(a_file / "page.html")))
    one_error_line(run_cli("make-data", "shd", "--out", str(a_file), "--train", "4", "--test", "4"))


# 9 ------------------------------------------------------------------------------- signals
def _workers_of(run_dir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "snnbench.harness.worker" in cmdline and str(run_dir) in cmdline:
                pids.append(int(proc.name))
    return pids


def _start_hung_run(tmp_path, small_shd):
    suite = write_suite(tmp_path / "s.yaml", ["c0"], ["fake-hang"], timeout_s=300)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "snnbench", "run", "--suite", str(suite), "--data-dir",
                             str(small_shd), "--out", str(out), "--no-report"], env={**os.environ, **ENV},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        dirs = list(out.glob("*"))
        if dirs and _workers_of(dirs[0]):
            return proc, dirs[0]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the worker never started")


def _gone(pids, within_s=10.0) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        if not any(Path(f"/proc/{p}").exists() and "Z" not in _state(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "X"


def test_a_worker_dies_with_its_killed_parent(tmp_path, small_shd):
    proc, run_dir = _start_hung_run(tmp_path, small_shd)
    workers = _workers_of(run_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _gone(workers), "the hung worker outlived its parent"


def test_sigterm_ends_a_run_like_ctrl_c(tmp_path, small_shd):
    proc, run_dir = _start_hung_run(tmp_path, small_shd)
    workers = _workers_of(run_dir)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert _gone(workers)
    assert not (run_dir / "scratch").exists()  # job file and compile cache removed


# 10 ------------------------------------------------------------------------------ Markdown
def test_markdown_report_escapes_result_text(tmp_path):
    from snnbench.report.html import markdown
    from snnbench.report.load import Run

    rec = {"suite": "s", "case": "a|b <b>x</b> *y*", "runner": "r", "metric": "epoch_s", "status": "ok",
           "value": 1.0, "accuracy": 0.5}
    text = markdown([Run(path=tmp_path / "run", manifest={"suite": "s|t"}, records=[rec])])
    row = next(line for line in text.splitlines() if "<" in line or "&lt;" in line)
    assert "a\\|b &lt;b&gt;x&lt;/b&gt; \\*y\\*" in row and "<b>" not in text
    assert row.count(" | ") == 7  # the cell's '|' did not add a column
