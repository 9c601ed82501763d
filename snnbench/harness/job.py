"""Run one (case, runner) job in worker processes: the parity gate, the benchmark, the memory
probes. Each worker is a fresh process (its own imports, memory peak, and a crash or hang that
cannot take the run down); this module watches it, enforces the case's timeout and memory cap, and
turns whatever happens into records.

Records and logs go to a :class:`JobSink`: the run directory itself (the local executor), or a
relay that streams them to the driver (the Ray executor, :mod:`.ray_executor`).
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
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import DiskFull
from ..naming import job_file
from . import allocator
from .interference import LoadMonitor
from .phases import job_phases
from .worker import PREFIX


class JobSink(Protocol):
    """Where a job's records and logs go (a :class:`~snnbench.results.store.RunDir` is one)."""

    log_dir: Path
    scratch_dir: Path
    weights_dir: Path  # trained canonical weights, one .npz per training job

    def append(self, record: dict[str, Any]) -> None: ...


Progress = Callable[[dict[str, Any]], None]
POLL_S = 0.2
#: a worker that dies while its run directory's disk has less than this free ran out of disk, not memory
NEARLY_FULL_BYTES = 4 * 2**20


class _Counted:
    """A job's sink that counts the records appended through it: the job record says how many there
    were, so that ``--resume`` can tell a job whose records were all kept from one that lost some."""

    def __init__(self, sink: JobSink):
        self.sink, self.appended = sink, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def append(self, record: dict[str, Any]) -> None:
        self.sink.append(record)
        self.appended += 1


def _disk_nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _job_env(compile_cache: str, job: dict[str, Any] | None = None) -> dict[str, str]:
    """The worker's environment. ``compile_s`` must be a cold compile, as a user's first run sees
    it: each worker gets its own empty TorchInductor / Triton cache (an earlier run's cache made
    torch.compile's 10.5 s compile read 3.6 s here) and JAX's persistent cache is switched off.
    Every worker gets the same host allocator configuration (:mod:`.allocator`)."""
    e = allocator.worker_environ(dict(os.environ))  # no stray allocator settings
    e.setdefault("PYTHONUNBUFFERED", "1")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(compile_cache, "inductor")
    e["TRITON_CACHE_DIR"] = os.path.join(compile_cache, "triton")
    e["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    e["SNNBENCH_PARENT_PID"] = str(os.getpid())  # the worker dies when this process does
    devices = int(((job or {}).get("case") or {}).get("spec", {}).get("devices", 1) or 1)
    if devices > 1:
        # XLA shows one CPU device; a data-parallel case on the CPU gets N virtual host devices
        # (they share the host's cores: they prove the sharded program, not a speed-up). A GPU or
        # TPU case is untouched: the flag shapes only XLA's CPU platform.
        flags = [f for f in e.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        e["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
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


def run_job(job: dict[str, Any], run_dir: JobSink, on_event: Progress, timeout_s: float,
            memory_limit_bytes: int | None = None) -> list[dict[str, Any]]:
    """Run one job in a worker; returns its records (already appended to the run dir).

    A worker that times out, passes the memory cap, dies, or ends without finishing yields a
    record saying so.
    """
    kind = job.get("kind", "bench")
    case_id = job["case"]["spec"]["id"]
    records: list[dict[str, Any]] = []
    label = f"{kind}-{job['phase']}" if kind == "memory" else kind
    # one naming rule (snnbench.naming): 'a/b' and 'a_b' never share a file, nothing leaves its folder
    log_path = run_dir.log_dir / job_file(case_id, job["runner"], f"--{label}.log")
    if kind == "bench":
        job = {**job, "weights_out": str(run_dir.weights_dir / job_file(case_id, job["runner"], ".npz"))}
    # The job file and the compile cache live in the run directory's scratch folder, not the system
    # temp dir: whatever a killed parent leaves there is removed by the next --resume of the run.
    scratch = run_dir.scratch_dir
    scratch.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=scratch) as f:
        json.dump(job, f)
        job_path = f.name
    log = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644),
                    "w")
    compile_cache = tempfile.mkdtemp(prefix="compile-cache-", dir=scratch)
    started = time.monotonic()
    monitor = LoadMonitor()  # the machine's load while the worker runs: who else used the CPUs
    proc = subprocess.Popen(
        [sys.executable, "-m", "snnbench.harness.worker", job_path],
        stdout=subprocess.PIPE, stderr=log, text=True, env=_job_env(compile_cache, job),
        start_new_session=True,  # its own process group: a kill takes its children too
    )
    monitor.watch(proc.pid)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = started + timeout_s
    done, status, reason, peak, disk_full = False, None, "", 0, ""
    worker_phases: dict[str, float] = {}
    try:
        while True:
            monitor.tick()
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
                try:
                    log.write(line)
                except OSError:  # a full disk stops the log, not the job; a record it sends says so
                    pass
                continue
            event = json.loads(line[len(PREFIX):])
            if event.get("event") == "record":
                rec = {k: v for k, v in event.items() if k != "event"}
                rec["load"] = monitor.record_load()
                event = {**event, "load": rec["load"]}
                run_dir.append(rec)
                records.append(rec)
            elif event.get("event") == "disk_full":  # the worker could not write: the job stays unfinished
                disk_full = event.get("reason", "")
                continue
            elif event.get("event") == "phases":
                worker_phases = event.get("phases") or {}
                continue
            elif event.get("event") == "done":
                done = True
            on_event({**event, "runner": job["runner"], "case": case_id, "kind": kind})
    finally:
        if proc.poll() is None:
            _kill(proc)
        proc.wait()
        worker_wall = time.monotonic() - started
        for cleanup in (log.close, lambda: os.unlink(job_path)):
            try:
                cleanup()
            except OSError:  # a full disk cannot flush the log: the job's outcome still counts
                pass
        shutil.rmtree(compile_cache, ignore_errors=True)
    if disk_full or (status is None and not done and _disk_nearly_full(scratch)):
        raise DiskFull(f"no space left on device in the worker of {case_id} / {job['runner']}"
                       f"{f': {disk_full}' if disk_full else ''}")
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
        rec = {**base, "metric": metric, "status": status, "reason": reason, "load": monitor.record_load(),
               **({"extra": {"phase": job["phase"]}} if kind == "memory" else {})}
        run_dir.append(rec)
        records.append(rec)
        on_event({"event": "record", **rec, "kind": kind})
    if kind == "bench":
        memory_started = time.monotonic()
        for phase in _pending_memory_phases(records):
            records += run_job({**job, "kind": "memory", "phase": phase}, run_dir, on_event, timeout_s,
                               memory_limit_bytes)
        extra = {"memory phases": time.monotonic() - memory_started, "parity": job.get("parity_s", 0.0)}
        wall = time.monotonic() - started
        worst = next((r for r in records if r["status"] != "ok"), None)
        rec = {**base, "metric": "job", "status": worst["status"] if worst else "ok",
               "reason": worst.get("reason", "") if worst else "", "value": wall, "unit": "s",
               "load": monitor.job_load(),
               # where the job's time went; value is the bench worker and its memory workers, the parity
               # gate's worker ran before it (job_wall_s: both)
               "phases": job_phases(worker_phases, worker_wall, extra, wall + extra["parity"]),
               "job_wall_s": wall + extra["parity"]}
        if isinstance(run_dir, _Counted):
            rec["records"] = run_dir.appended  # every record of the job before this one (parity included)
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


def _parity(job: dict[str, Any], run_dir: JobSink, on_event: Progress, timeout_s: float,
            memory_limit_bytes: int | None) -> dict[str, Any]:
    """Run the parity gate for a job in its own worker; returns what the job's records carry."""
    on_event({"event": "parity_start", "case": job["case"]["spec"]["id"], "runner": job["runner"]})
    started = time.monotonic()
    records = run_job({**job, "kind": "parity"}, run_dir, on_event, timeout_s, memory_limit_bytes)
    seconds = time.monotonic() - started
    rec = records[-1] if records else {"status": "crashed", "reason": "no parity record"}
    if rec.get("status") == "ok":
        return {"status": rec["value"], "summary": rec["reason"], "seconds": seconds}
    return {"status": "unknown", "summary": f"parity {rec.get('status')}: {rec.get('reason', '')}", "seconds": seconds}


def run_case_job(job: dict[str, Any], sink: JobSink, on_event: Progress,
                 memory_limit_bytes: int | None) -> list[dict[str, Any]]:
    """One (case, runner) as the run plans it: the parity gate for an adapter, then the benchmark."""
    timeout_s = job["case"]["spec"].get("timeout_s", 3600.0)
    sink = _Counted(sink)
    if job["runner"] != "reference" and job.get("check_parity", True) and job.get("parity_in_worker"):
        job = {**job, "parity": None}  # the gate runs first in the benchmark's own worker (execute.gate)
    elif job["runner"] != "reference" and job.get("check_parity", True):
        parity = _parity(job, sink, on_event, timeout_s, memory_limit_bytes)
        job = {**job, "parity": parity, "parity_s": parity.pop("seconds")}
    elif job["runner"] == "reference":
        job = {**job, "parity": {"status": "reference", "summary": "the yardstick itself"}}
    on_event({"event": "job_start", "case": job["case"]["spec"]["id"], "runner": job["runner"],
              "epochs": job["case"]["spec"].get("epochs")})
    return run_job(job, sink, on_event, timeout_s, memory_limit_bytes)
