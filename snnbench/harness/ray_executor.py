"""The Ray executor: every (case, runner) job, its parity gate included, is one Ray task.

A task runs on whichever node has the resources the job asks for (a GPU per job on a GPU device;
CPUs otherwise, by default a whole node's worth so that CPU timings never share cores; the suite's
memory cap as Ray's ``memory`` request). Inside the task the job runs exactly as the local executor
runs it: :func:`~snnbench.harness.job.run_case_job`, worker processes, timeouts and memory caps. Its
records, progress events and logs stream back to the driver (a Ray generator task), and only the
driver writes the run directory, so no shared filesystem is assumed. A task that dies (its process
killed, its node lost) is a ``crashed`` job.

Data travels with the jobs when the nodes may not see the driver's files: the driver puts the
dataset's folder into Ray's object store as one archive, and a node that lacks an identical copy
unpacks it into its cache once (keyed by the files' names and sizes).
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import SnnbenchError
from ..results.store import RunDir
from . import env
from .job import Progress, run_case_job

#: the driver's environment variables a task sees (runner plug-ins, caches, the JAX platform)
FORWARDED_ENV = ("PYTHONPATH", "JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL")
FORWARDED_PREFIXES = ("SNNBENCH_",)
#: a log shipped back to the driver keeps at most its last this many bytes
LOG_TAIL_BYTES = 2 * 2**20
SHIP_MODES = ("auto", "always", "never")
DATA_FOLDERS = {"shd": "SHD", "nmnist": "NMNIST"}  # the dataset's folder inside a data root


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIXES)}


# ---------------------------------------------------------------- on the node


class _Relay:
    """A job sink on a node: records go to the driver through a queue; logs to a local folder that
    is shipped back when the job ends."""

    def __init__(self, root: Path, out: "queue.Queue[dict[str, Any] | None]", driver_log_dir: str):
        self.log_dir = root / "logs"
        self.scratch_dir = root / "scratch"
        self.weights_dir = root / "weights"
        self.log_dir.mkdir(parents=True)
        self._out = out
        self._driver_log_dir = driver_log_dir

    def driver_path(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record whose log path names the log's place in the driver's run directory."""
        log = record.get("log")
        if isinstance(log, str) and log.startswith(str(self.log_dir)):
            return {**record, "log": os.path.join(self._driver_log_dir, os.path.basename(log))}
        return record

    def append(self, record: dict[str, Any]) -> None:
        self._out.put({"kind": "record", "record": self.driver_path(record)})

    def event(self, event: dict[str, Any]) -> None:
        self._out.put({"kind": "event", "event": self.driver_path(event)})


def node_task(job: dict[str, Any], memory_limit_bytes: int | None, data: dict[str, Any] | None,
              driver_log_dir: str, threads: int | None) -> Iterator[dict[str, Any]]:
    """The body of one Ray task (a generator: each item streams to the driver as it is yielded)."""
    import ray

    yield {"kind": "node", "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
           "environment": env.capture()}
    # The job's workers inherit this process's environment: the CPUs Ray reserved for the job, not
    # every core of a shared node. Ray reuses its worker processes, so the setting is undone below.
    saved = os.environ.get("SNNBENCH_THREADS")
    if threads:
        os.environ["SNNBENCH_THREADS"] = str(threads)
    try:
        yield from _run_on_node(job, memory_limit_bytes, data, driver_log_dir)
    finally:
        if saved is None:
            os.environ.pop("SNNBENCH_THREADS", None)
        else:
            os.environ["SNNBENCH_THREADS"] = saved


def _run_on_node(job: dict[str, Any], memory_limit_bytes: int | None, data: dict[str, Any] | None,
                 driver_log_dir: str) -> Iterator[dict[str, Any]]:
    if data is not None:
        job = {**job, "data_root": str(materialize_data(job["data_root"], data))}
    root = Path(tempfile.mkdtemp(prefix="snnbench-ray-job-"))
    out: queue.Queue[dict[str, Any] | None] = queue.Queue()
    relay = _Relay(root, out, driver_log_dir)

    def work() -> None:
        try:
            run_case_job(job, relay, relay.event, memory_limit_bytes)
        except BaseException as exc:  # the driver records it; the task must still end cleanly
            out.put({"kind": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]})
        finally:
            out.put(None)

    threading.Thread(target=work, daemon=True, name="snnbench-job").start()
    try:
        while (item := out.get()) is not None:
            yield item
        for log in sorted(relay.log_dir.iterdir()):
            yield {"kind": "log", "name": log.name, "text": _tail(log)}
        if relay.weights_dir.is_dir():
            for weights in sorted(relay.weights_dir.glob("*.npz")):
                yield {"kind": "weights", "name": weights.name, "data": weights.read_bytes()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - LOG_TAIL_BYTES))
        text = f.read().decode(errors="replace")
    return text if size <= LOG_TAIL_BYTES else f"[... first {size - LOG_TAIL_BYTES} bytes cut ...]\n{text}"


def data_fingerprint(folder: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every file under ``folder``: what 'the same data' means here."""
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def materialize_data(driver_root: str, data: dict[str, Any]) -> Path:
    """The data root this node reads: the driver's own path when this node sees identical files
    there (and shipping is not forced), else the shipped archive unpacked into the node's cache."""
    import ray

    folder, fingerprint = data["folder"], [tuple(f) for f in data["fingerprint"]]
    here = Path(driver_root)
    if not data["always"] and (here / folder).is_dir() and data_fingerprint(here / folder) == fingerprint:
        return here
    from ..data.shd import cache_dir

    root = cache_dir() / "ray-data" / data["digest"]
    marker = root / ".complete"
    if not marker.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="unpacking-", dir=root.parent))
        blob = ray.get(data["archive"][0])  # the ref travels in a list: Ray resolves only top-level refs
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            tmp.rename(root)  # atomic: a second job on this node unpacking at once loses the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        marker.touch()
    return root


# ---------------------------------------------------------------- on the driver


def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


class RayExecutor:
    """Runs a suite's jobs as Ray tasks on the cluster at ``address`` (None: a local cluster started
    for this run and stopped after it).

    ``cpus_per_job``: CPUs a CPU job reserves (default: every CPU of the smallest node, so one CPU
    job per node and timings that do not share cores). ``ship_data``: 'auto' ships a dataset when the
    cluster has a node on another host, 'always' / 'never' force it.
    """

    def __init__(self, address: str | None = None, cpus_per_job: int | None = None, ship_data: str = "auto",
                 local_cpus: int | None = None):
        if ship_data not in SHIP_MODES:
            raise SnnbenchError(f"ship_data {ship_data!r}: expected one of {', '.join(SHIP_MODES)}")
        if cpus_per_job is not None and cpus_per_job < 1:
            raise SnnbenchError(f"--ray-cpus-per-job must be at least 1, got {cpus_per_job}")
        if address is not None:  # bad input fails here, before the run directory is created
            _probe(address)
        self.address, self.cpus_per_job, self.ship_data = address, cpus_per_job, ship_data
        self.local_cpus = local_cpus
        self.cpus_per_cpu_job: int | None = None  # as resolved against the cluster
        self.nodes: dict[str, dict[str, Any]] = {}  # node id -> host, environment, jobs
        self.cluster: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        return {"name": "ray", "address": self.address or "local", "cpus_per_job": self.cpus_per_job,
                "cpus_per_cpu_job": self.cpus_per_cpu_job,
                "ship_data": self.ship_data, "cluster": self.cluster, "nodes": self.nodes}

    # -- connecting

    def _connect(self):
        try:
            import ray
        except ImportError:
            raise SnnbenchError("missing package: ray (pip install 'snnbench[ray]')") from None
        import logging

        kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                  runtime_env={"env_vars": forwarded_env()}, configure_logging=True)
        if self.address is None:
            # the suite's memory cap is the job's request: offer the machine's memory, not Ray's 70%
            kw.update(num_cpus=self.local_cpus or os.cpu_count() or 1, _memory=env.capture().get("memory_bytes"))
        else:
            kw.update(address=self.address)
        try:
            ray.init(**kw)
        except Exception as exc:
            where = self.address or "a local cluster"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SnnbenchError(f"cannot start Ray on {where}: {first}") from None
        return ray

    def _inventory(self, ray) -> list[dict[str, Any]]:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.cluster = [{"node_id": n["NodeID"], "address": n.get("NodeManagerAddress"),
                         "resources": {k: v for k, v in n.get("Resources", {}).items()
                                       if k in ("CPU", "GPU", "memory")}} for n in nodes]
        return self.cluster

    # -- planning

    def _request(self, job: dict[str, Any], cluster: list[dict[str, Any]], limit: int | None) -> dict[str, Any]:
        """Ray resources for a job: a GPU for GPU devices ('auto' where the cluster has GPUs)."""
        has_gpu = any(n["resources"].get("GPU", 0) >= 1 for n in cluster)
        gpu = job["device"] == "gpu" or (job["device"] == "auto" and has_gpu)
        smallest = min((int(n["resources"].get("CPU", 0)) for n in cluster if n["resources"].get("CPU")), default=1)
        cpus = self.cpus_per_job or (1 if gpu else max(1, smallest))
        if not gpu:
            self.cpus_per_cpu_job = cpus
        request: dict[str, Any] = {"num_cpus": cpus, "num_gpus": 1 if gpu else 0}
        if limit:
            request["memory"] = limit
        return request

    @staticmethod
    def _unschedulable(request: dict[str, Any], cluster: list[dict[str, Any]]) -> str:
        """Why no node can ever run a job with ``request``, or '' if one can."""
        need = {"CPU": request["num_cpus"], "GPU": request["num_gpus"], "memory": request.get("memory", 0)}
        for n in cluster:
            if all(n["resources"].get(k, 0) >= v for k, v in need.items() if v):
                return ""
        parts = [f"{v / 2**30:.1f} GiB memory" if k == "memory" else f"{v:g} {k}" for k, v in need.items() if v]
        return f"no node of the Ray cluster offers {', '.join(parts)}"

    def _data(self, ray, jobs: list[dict[str, Any]], cluster: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per data root: what a node needs to get identical files (None entries: nothing shipped)."""
        here = socket.gethostbyname(socket.gethostname()) if self.ship_data == "auto" else ""
        remote = any(n["address"] not in (here, "127.0.0.1") for n in cluster)
        if self.ship_data == "never" or (self.ship_data == "auto" and not remote):
            return {}
        shipped: dict[str, dict[str, Any]] = {}
        for job in jobs:
            root, folder = job.get("data_root"), DATA_FOLDERS.get(job["case"]["spec"]["dataset"])
            if not root or not folder or root in shipped:
                continue
            fingerprint = data_fingerprint(Path(root) / folder)
            digest = hashlib.sha256(repr((folder, fingerprint)).encode()).hexdigest()[:16]
            shipped[root] = {"folder": folder, "fingerprint": fingerprint, "digest": digest,
                             "always": self.ship_data == "always",
                             "archive": [ray.put(_archive(Path(root) / folder))]}
        return shipped

    # -- running

    def run(self, jobs: list[dict[str, Any]], run_dir: RunDir, on_event: Progress,
            memory_limit_bytes: int | None) -> None:
        ray = self._connect()
        try:
            self._run(ray, jobs, run_dir, on_event, memory_limit_bytes)
        finally:
            ray.shutdown()

    def _run(self, ray, jobs, run_dir: RunDir, on_event: Progress, limit: int | None) -> None:
        cluster = self._inventory(ray)
        data = self._data(ray, jobs, cluster)
        task = ray.remote(node_task)
        events: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        running: dict[int, _Tracked] = {}
        for i, job in enumerate(jobs):
            request = self._request(job, cluster, limit)
            why = self._unschedulable(request, cluster)
            if why:
                _end_job(job, run_dir, on_event, "skipped", why, time.monotonic())
                continue
            threads = request["num_cpus"] if not request["num_gpus"] else None
            gen = task.options(**request, max_retries=0).remote(
                job, limit, data.get(job.get("data_root") or ""), str(run_dir.log_dir), threads)
            running[i] = _Tracked(job, gen)
            threading.Thread(target=_pump, args=(ray, i, gen, events), daemon=True).start()
        try:
            while running:
                i, item = events.get()
                tracked = running[i]
                if item is None:
                    del running[i]
                    if not tracked.ended:
                        reason = tracked.error or "the Ray task ended without finishing its job"
                        _end_job(tracked.job, run_dir, on_event, "crashed", reason, tracked.started,
                                 tracked.appended)
                    continue
                self._handle(tracked, item, run_dir, on_event)
        except KeyboardInterrupt:
            for tracked in running.values():
                try:
                    ray.cancel(tracked.gen, force=True)
                except Exception:
                    pass
            raise

    def _handle(self, tracked: "_Tracked", item: dict[str, Any], run_dir: RunDir, on_event: Progress) -> None:
        kind = item["kind"]
        if kind == "record":
            run_dir.append(item["record"])
            tracked.appended += 1
            if item["record"].get("metric") == "job":
                tracked.ended = True
        elif kind == "event":
            on_event(item["event"])
        elif kind == "log":
            run_dir.write_file("logs", item["name"], item["text"].encode())
        elif kind == "weights":
            run_dir.write_file("weights", item["name"], item["data"])
        elif kind == "node":
            node = self.nodes.setdefault(item["node_id"], {"host": item["host"], "environment": item["environment"],
                                                            "jobs": []})
            job = tracked.job
            node["jobs"].append(f"{job['case']['spec']['id']}/{job['runner']}")
            on_event({"event": "progress", "what": "node", "case": job["case"]["spec"]["id"],
                      "runner": job["runner"], "node": item["host"]})
        elif kind == "error":
            tracked.error = f"the job's driver code failed on its node: {item['reason']}"
        elif kind == "task_failed":
            tracked.error = item["reason"]


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on an address nothing listens at: Ray itself retries for minutes before it gives up."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SnnbenchError(f"--ray-address {address!r}: expected HOST:PORT (or 'auto')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SnnbenchError(f"cannot start Ray on {address}: nothing answers there ({exc.strerror or exc})") from None


class _Tracked:
    def __init__(self, job: dict[str, Any], gen: Any):
        self.job, self.gen, self.started = job, gen, time.monotonic()
        self.ended, self.error = False, ""
        self.appended = 0  # records of this job the driver has appended


def _pump(ray, i: int, gen, events: "queue.Queue[tuple[int, dict[str, Any] | None]]") -> None:
    """Move one task's stream into the driver's queue; a task that dies ends its stream with why."""
    try:
        for ref in gen:
            events.put((i, ray.get(ref)))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        events.put((i, {"kind": "task_failed", "reason": f"Ray task died ({type(exc).__name__}: {first})"[:500]}))
    events.put((i, None))


def _end_job(job: dict[str, Any], run_dir: RunDir, on_event: Progress, status: str, reason: str,
             started: float, appended: int = 0) -> None:
    """The records of a job the cluster could not run or lost: a ``run`` record and its ``job`` record
    (which counts the job's records, ``appended`` of them streamed before it was lost)."""
    base = {"suite": job["suite"], "case": job["case"]["spec"]["id"], "runner": job["runner"],
            "device": job.get("device_label", job["device"]), "time": time.time()}
    rec = {**base, "metric": "run", "status": status, "reason": reason}
    run_dir.append(rec)
    on_event({"event": "record", **rec, "kind": "bench"})
    end = {**base, "metric": "job", "status": status, "reason": reason, "value": time.monotonic() - started,
           "unit": "s", "records": appended + 1}
    run_dir.append(end)
    on_event({"event": "job_end", **end, "kind": "bench"})
