"""Run a suite: one worker process per (case, runner), records appended as they arrive.

Each benchmark job ends with a ``job`` record (its final status and wall time), written by the
parent after the worker exits. ``--resume`` uses these: a job with a ``job`` record is finished;
any other records of the same (case, runner) are the leftovers of an interrupted job, removed
before the job runs again, so nothing is lost or duplicated.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..data import resolve_source
from ..errors import SnnbenchError
from ..results.store import RunDir, describe_skipped
from ..spec import Case, Suite, case_to_dict
from . import allocator, env
from .worker import PREFIX

Progress = Callable[[dict[str, Any]], None]
POLL_S = 0.2


def _job_env(compile_cache: str) -> dict[str, str]:
    """The worker's environment. ``compile_s`` must be a cold compile, as a user's first run sees
    it: each worker gets its own empty TorchInductor / Triton cache (an earlier run's cache made
    torch.compile's 10.5 s compile read 3.6 s here) and JAX's persistent cache is switched off.
    Every worker gets the same host allocator configuration (:mod:`.allocator`)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # no stray allocator settings
    e.update(allocator.allocator_env())
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(compile_cache, "inductor")
    e["TRITON_CACHE_DIR"] = os.path.join(compile_cache, "triton")
    e["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    e["SNNBENCH_PARENT_PID"] = str(os.getpid())  # the worker dies when this process does
    return e


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_job(job: dict[str, Any], run_dir: RunDir, on_event: Progress, timeout_s: float,
            memory_limit_bytes: int | None = None) -> list[dict[str, Any]]:
    """Run one job in a worker; returns its records (already appended to the run dir).

    A worker that times out, passes the memory cap, dies, or ends without finishing yields a
    record saying so.
    """
    kind = job.get("kind", "bench")
    case_id = job["case"]["spec"]["id"]
    records: list[dict[str, Any]] = []
    safe_case = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)
    label = f"{kind}-{job['phase']}" if kind == "memory" else kind
    log_path = run_dir.log_dir / f"{safe_case}--{job['runner']}--{label}.log"
    # The job file and the compile cache live in the run directory's scratch folder, not the system
    # temp dir: whatever a killed parent leaves there is removed by the next --resume of the run.
    scratch = run_dir.scratch_dir
    scratch.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=scratch) as f:
        json.dump(job, f)
        job_file = f.name
    log = open(log_path, "w")
    compile_cache = tempfile.mkdtemp(prefix="compile-cache-", dir=scratch)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snnbench.harness.worker", job_file],
        stdout=subprocess.PIPE, stderr=log, text=True, env=_job_env(compile_cache),
        start_new_session=True,  # its own process group: a kill takes its children too
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = started + timeout_s
    done, status, reason, peak = False, None, "", 0
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                status, reason = "timeout", f"no result within the case timeout of {timeout_s:g} s"
                break
            if memory_limit_bytes:
                peak = max(peak, rss_bytes(proc.pid))
                if peak > memory_limit_bytes:
                    status = "oom"
                    reason = (f"worker passed the memory cap of {memory_limit_bytes / 2**30:.2f} GiB "
                              f"(RSS {peak / 2**30:.2f} GiB) and was stopped")
                    break
            try:
                line = lines.get(timeout=min(POLL_S, max(0.0, deadline - now)))
            except queue.Empty:
                continue
            if line is None:
                break
            if not line.startswith(PREFIX):
                log.write(line)
                continue
            event = json.loads(line[len(PREFIX):])
            if event.get("event") == "record":
                rec = {k: v for k, v in event.items() if k != "event"}
                run_dir.append(rec)
                records.append(rec)
            elif event.get("event") == "done":
                done = True
            on_event({**event, "runner": job["runner"], "case": case_id, "kind": kind})
    finally:
        if proc.poll() is None:
            _kill(proc)
        proc.wait()
        log.close()
        os.unlink(job_file)
        shutil.rmtree(compile_cache, ignore_errors=True)
    if status is None and not done:
        code = proc.returncode
        status = "crashed"
        reason = (f"worker killed by signal {signal.Signals(-code).name}" if code and code < 0
                  else f"worker exited with code {code} before finishing")
        if code == -signal.SIGKILL:
            reason += " (out of memory? the kernel's OOM killer sends SIGKILL)"
    base = {"suite": job["suite"], "case": case_id, "runner": job["runner"],
            "device": job.get("device_label", job["device"]),
            "time": time.time(), "log": str(log_path)}
    if status is not None:
        metric = {"parity": "parity", "memory": "memory"}.get(kind, "run")
        rec = {**base, "metric": metric, "status": status, "reason": reason,
               **({"extra": {"phase": job["phase"]}} if kind == "memory" else {})}
        run_dir.append(rec)
        records.append(rec)
        on_event({"event": "record", **rec, "kind": kind})
    if kind == "bench":
        for phase in _pending_memory_phases(records):
            records += run_job({**job, "kind": "memory", "phase": phase}, run_dir, on_event, timeout_s,
                               memory_limit_bytes)
        worst = next((r for r in records if r["status"] != "ok"), None)
        rec = {**base, "metric": "job", "status": worst["status"] if worst else "ok",
               "reason": worst.get("reason", "") if worst else "", "value": time.monotonic() - started, "unit": "s"}
        run_dir.append(rec)
        on_event({"event": "job_end", **rec, "kind": kind})
    return records


def _pending_memory_phases(records: list[dict[str, Any]]) -> list[str]:
    """Phases whose device peak the worker could not reset (JAX on a GPU): each gets a worker of its own."""
    phases = []
    for r in records:
        for mem in (r.get("memory"), ((r.get("extra") or {}).get("floor") or {}).get("memory")):
            if mem and mem.get("device_pending") and mem["phase"] not in phases:
                phases.append(mem["phase"])
    return phases


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _parity(job: dict[str, Any], run_dir: RunDir, on_event: Progress, timeout_s: float,
            memory_limit_bytes: int | None) -> dict[str, Any]:
    """Run the parity gate for a job in its own worker; returns what the job's records carry."""
    on_event({"event": "parity_start", "case": job["case"]["spec"]["id"], "runner": job["runner"]})
    records = run_job({**job, "kind": "parity"}, run_dir, on_event, timeout_s, memory_limit_bytes)
    rec = records[-1] if records else {"status": "crashed", "reason": "no parity record"}
    if rec.get("status") == "ok":
        return {"status": rec["value"], "summary": rec["reason"]}
    return {"status": "unknown", "summary": f"parity {rec.get('status')}: {rec.get('reason', '')}"}


def plan(suite: Suite, runners: list[str], device: str | None, seed: int | None,
         epochs: int | None = None) -> list[tuple[Case, str]]:
    cases = []
    for case in suite.cases:
        spec = case.spec
        if device:
            spec = replace(spec, device=device)
        if seed is not None:
            spec = replace(spec, seed=seed)
        if epochs is not None and spec.epochs > 0:  # timing-only cases (epochs 0) stay so
            spec = replace(spec, epochs=epochs)
        cases.append(replace(case, spec=spec))
    return [(case, runner) for case in cases for runner in runners]


def finished_jobs(run_dir: RunDir) -> set[tuple[str, str]]:
    return {(r["case"], r["runner"]) for r in run_dir.records() if r.get("metric") == "job"}


def drop_unfinished(run_dir: RunDir, finished: set[tuple[str, str]]) -> tuple[int, list[tuple[int, str]]]:
    """Remove records of jobs that never reached their ``job`` record, and lines that are not records
    (a line cut short by a killed writer); returns (records dropped, lines dropped)."""
    records = run_dir.records()
    skipped = run_dir.skipped_lines
    keep = [r for r in records if (r["case"], r["runner"]) in finished]
    if len(keep) != len(records) or skipped:
        run_dir.rewrite(keep)
    return len(records) - len(keep), skipped


def check_batches(jobs: list[tuple[Case, str]], sources: dict[tuple, Any]) -> None:
    """Every training case has at least one whole batch of training samples and one test sample
    (checked before the run, not as a division by zero inside a worker)."""
    for case, _ in jobs:
        source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
        if source is None or not case.spec.epochs:
            continue
        n_train = min(case.spec.train_samples or source.train_samples, source.train_samples)
        if n_train < case.spec.batch:
            raise SnnbenchError(f"case {case.id}: batch {case.spec.batch} is larger than the {n_train} training "
                                f"samples of {source.root}")
        if source.test_samples < 1:
            raise SnnbenchError(f"case {case.id}: {source.root} has no test samples")


def resolve_sources(jobs: list[tuple[Case, str]], data_dir: str | None) -> dict[tuple, Any]:
    """The data source of every file-backed case (SHD, N-MNIST), keyed by (dataset, train_samples,
    test_samples)."""
    sources: dict[tuple, Any] = {}
    for case, _ in jobs:
        key = (case.spec.dataset, case.spec.train_samples, case.spec.test_samples)
        if key not in sources:
            source = resolve_source(case.spec.dataset, data_dir, case.spec.train_samples, case.spec.test_samples)
            if source is not None:
                sources[key] = source
    return sources


def run_suite(
    suite: Suite,
    runners: list[str],
    out_dir: Path | None = None,
    *,
    device: str | None = None,
    data_dir: str | None = None,
    seed: int | None = None,
    quick: bool = False,
    command: str = "",
    on_event: Progress = lambda e: None,
    on_start: Callable[[RunDir, list[tuple[Case, str]], str], None] = lambda *a: None,
    check_parity: bool = True,
    resume: RunDir | None = None,
    case_filter: str | None = None,
    epochs: int | None = None,
) -> RunDir:
    """Run every (case, runner) of ``suite``; returns the run directory.

    With ``resume``, continue that run directory: finished jobs are kept, unfinished ones rerun.
    """
    jobs = plan(suite, runners, device, seed, epochs)
    if resume is not None:
        resume.lock()  # before reading what is finished: a second writer stops here
        done = finished_jobs(resume)
        jobs = [(c, r) for c, r in jobs if (c.id, r) not in done]
    # Find the data before writing anything: bad input must not leave a run directory behind.
    try:
        sources = resolve_sources(jobs, data_dir)
        check_batches(jobs, sources)
    except BaseException:
        if resume is not None:
            resume.unlock()
        raise
    if resume is not None:
        run_dir = resume
        manifest = run_dir.manifest()
        dropped, bad_lines = drop_unfinished(run_dir, done)
        shutil.rmtree(run_dir.scratch_dir, ignore_errors=True)  # left by a killed run
        manifest.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                                   "finished_jobs": len(done), "dropped_records": dropped,
                                                   "dropped_lines": [list(b) for b in bad_lines]})
        if bad_lines:
            on_event({"event": "warning", "text": f"records.jsonl: {describe_skipped(bad_lines)}; dropped"})
    else:
        if out_dir is None:
            raise SnnbenchError("no output directory")
        run_dir = RunDir.create(out_dir, suite.name)
        manifest = {
            "suite": suite.name, "suite_path": suite.path, "description": suite.description,
            "runners": runners, "quick": quick, "device": device, "seed": seed, "data_dir": data_dir,
            "check_parity": check_parity, "case_filter": case_filter, "epochs": epochs, "command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timing": suite.timing, "environment": env.capture(), "allocator": allocator.describe(),
            "cases": [case_to_dict(c) for c in suite.cases],
        }
    manifest["status"] = "running"
    notes = sorted({s.note for s in sources.values()})
    if any(c.spec.dataset == "cue" for c, _ in jobs):
        notes.append("synthetic cue-recall task (generated in memory)")
    if any(c.spec.dataset == "random" for c, _ in jobs):
        notes.append("random spike input (timing only)")
    if resume is None:
        manifest["data"] = notes
        manifest["synthetic_data"] = any(s.synthetic for s in sources.values())
    limit = int(suite.memory_limit_gb * 2**30) if suite.memory_limit_gb else None
    try:
        run_dir.write_manifest(manifest)
        on_start(run_dir, jobs, "; ".join(notes))
        for case, runner in jobs:
            source = sources.get((case.spec.dataset, case.spec.train_samples, case.spec.test_samples))
            job = {
                "suite": suite.name, "case": case_to_dict(case), "runner": runner, "device": case.spec.device,
                # what records say until the runner names the device it resolved ('auto' never stays)
                "device_label": env.device_label(case.spec.device),
                "data_root": str(source.root) if source else None, "synthetic": source.synthetic if source else None,
                "data_note": source.note if source else "random input", "timing": suite.timing,
            }
            if runner != "reference" and check_parity:
                job["parity"] = _parity(job, run_dir, on_event, case.spec.timeout_s, limit)
            elif runner == "reference":
                job["parity"] = {"status": "reference", "summary": "the yardstick itself"}
            on_event({"event": "job_start", "case": case.id, "runner": runner, "epochs": case.spec.epochs})
            run_job(job, run_dir, on_event, case.spec.timeout_s, limit)
        manifest["status"] = "complete"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    except BaseException as exc:
        manifest["status"] = "crashed"
        manifest["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        run_dir.write_manifest(manifest)
        shutil.rmtree(run_dir.scratch_dir, ignore_errors=True)
        run_dir.unlock()
    return run_dir
