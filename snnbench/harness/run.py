"""Run a suite: one worker process per (case, runner), records appended as they arrive."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..data import resolve_shd
from ..results.store import RunDir
from ..spec import Case, Suite, case_to_dict
from . import env
from .worker import PREFIX

Progress = Callable[[dict[str, Any]], None]


def _job_env() -> dict[str, str]:
    """Same thread settings for every runner; an explicit user setting wins."""
    e = dict(os.environ)
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return e


def run_job(job: dict[str, Any], run_dir: RunDir, on_event: Progress, timeout_s: float) -> list[dict[str, Any]]:
    """Run one job in a worker; returns its records (already appended to the run dir).

    A worker that times out, dies, or ends without a record yields a record saying so.
    """
    records: list[dict[str, Any]] = []
    kind = job.get("kind", "bench")
    log_path = run_dir.log_dir / f"{job['case']['spec']['id']}--{job['runner']}--{kind}.log"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
        job_file = f.name
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "snnbench.harness.worker", job_file],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=_job_env(),
        start_new_session=True,  # its own process group: a kill takes its children too
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    done, status, reason = False, None, ""
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                status, reason = "timeout", f"no result within the case timeout of {timeout_s:g} s"
                break
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
            on_event({**event, "runner": job["runner"], "case": job["case"]["spec"]["id"], "kind": kind})
    finally:
        if proc.poll() is None:
            _kill(proc)
        proc.wait()
        log.close()
        os.unlink(job_file)
    if status is None and not done:
        code = proc.returncode
        status = "crashed"
        reason = (f"worker killed by signal {signal.Signals(-code).name}" if code and code < 0
                  else f"worker exited with code {code} before finishing")
        if code == -signal.SIGKILL:
            reason += " (out of memory? the kernel's OOM killer sends SIGKILL)"
    if status is not None:
        rec = {"suite": job["suite"], "case": job["case"]["spec"]["id"], "runner": job["runner"],
               "device": job["device"], "metric": "run", "status": status, "reason": reason,
               "time": time.time(), "log": str(log_path)}
        run_dir.append(rec)
        records.append(rec)
        on_event({"event": "record", **rec, "kind": kind})
    return records


def _parity(job: dict[str, Any], run_dir: RunDir, on_event: Progress, timeout_s: float) -> dict[str, Any]:
    """Run the parity gate for a job in its own worker; returns what the job's records carry."""
    on_event({"event": "parity_start", "case": job["case"]["spec"]["id"], "runner": job["runner"]})
    records = run_job({**job, "kind": "parity"}, run_dir, on_event, timeout_s)
    rec = records[-1] if records else {"status": "crashed", "reason": "no parity record"}
    if rec.get("status") == "ok":
        return {"status": rec["value"], "summary": rec["reason"]}
    return {"status": "unknown", "summary": f"parity {rec.get('status')}: {rec.get('reason', '')}"}


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def plan(suite: Suite, runners: list[str], device: str | None, seed: int | None) -> list[tuple[Case, str]]:
    cases = []
    for case in suite.cases:
        spec = case.spec
        if device:
            spec = replace(spec, device=device)
        if seed is not None:
            spec = replace(spec, seed=seed)
        cases.append(replace(case, spec=spec))
    return [(case, runner) for case in cases for runner in runners]


def run_suite(
    suite: Suite,
    runners: list[str],
    out_dir: Path,
    *,
    device: str | None = None,
    data_dir: str | None = None,
    seed: int | None = None,
    quick: bool = False,
    command: str = "",
    on_event: Progress = lambda e: None,
    on_start: Callable[[RunDir, list[tuple[Case, str]], str], None] = lambda *a: None,
    repeat: dict[str, Any] | None = None,
    check_parity: bool = True,
) -> RunDir:
    """Run every (case, runner) of ``suite``; returns the run directory."""
    jobs = plan(suite, runners, device, seed)
    run_dir = RunDir.create(out_dir, suite.name)
    manifest = {
        "suite": suite.name,
        "suite_path": suite.path,
        "description": suite.description,
        "runners": runners,
        "quick": quick,
        "device": device or "per case",
        "seed": seed,
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
        "environment": env.capture(),
        "cases": [case_to_dict(c) for c in suite.cases],
    }
    sources: dict[tuple, Any] = {}
    for case, _ in jobs:
        key = (case.spec.dataset, case.spec.train_samples, case.spec.test_samples)
        if key not in sources:
            sources[key] = resolve_shd(data_dir, case.spec.train_samples, case.spec.test_samples)
    notes = sorted({s.note for s in sources.values()})
    manifest["data"] = notes
    manifest["synthetic_data"] = any(s.synthetic for s in sources.values())
    run_dir.write_manifest(manifest)
    on_start(run_dir, jobs, "; ".join(notes))
    try:
        for case, runner in jobs:
            source = sources[(case.spec.dataset, case.spec.train_samples, case.spec.test_samples)]
            job = {
                "suite": suite.name,
                "case": case_to_dict(case),
                "runner": runner,
                "device": case.spec.device,
                "data_root": str(source.root),
                "synthetic": source.synthetic,
                "data_note": source.note,
                "repeat": repeat or {},
            }
            if runner != "reference" and check_parity:
                job["parity"] = _parity(job, run_dir, on_event, case.spec.timeout_s)
            elif runner == "reference":
                job["parity"] = {"status": "reference", "summary": "the yardstick itself"}
            on_event({"event": "job_start", "case": case.id, "runner": runner, "epochs": case.spec.epochs})
            run_job(job, run_dir, on_event, case.spec.timeout_s)
        manifest["status"] = "complete"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    finally:
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        run_dir.write_manifest(manifest)
    return run_dir
