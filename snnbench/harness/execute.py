"""Run one job in a worker process and emit its records: a benchmark job (the measurements of
:mod:`.measure`), a parity job (the gate of :mod:`.parity`) or a memory job (one phase's device
memory, for frameworks that cannot reset their peak).

``emit(event)`` receives dicts: ``{"event": "record", ...}`` for results, ``{"event": "progress", ...}``
for the parent's progress display. Every failure becomes a record with a status and a reason; no
exception escapes :func:`execute`.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

from ..data import DataSource, load_dataset
from ..errors import is_disk_full
from ..runners import get_runner_class
from ..spec import Case, case_from_dict, init_weights
from . import measure
from .memory import host_peak_bytes
from .phases import phase as clock
from .timing import RepeatPolicy

Emit = Callable[[dict[str, Any]], None]


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "resource_exhausted" in text


def failure_reason(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:500]


def base_record(job: dict[str, Any], case: Case) -> dict[str, Any]:
    s = case.spec
    return {
        "suite": job["suite"],
        "case": case.id,
        "runner": job["runner"],
        "device": job.get("device_label", job["device"]),  # replaced by the runner's own once built
        "dtype": s.dtype,
        "shape": case.shape(),
        "hyper": {"epochs": s.epochs, "lr": s.lr, "optimizer": s.optimizer, "loss": s.loss,
                  "augment_shift": s.augment_shift, "seed": s.seed},
        "data": {"note": job.get("data_note"), "synthetic": job.get("synthetic")},
        "parity": job.get("parity"),
    }


def gate_batch(runner, case: Case, job: dict[str, Any]) -> int:
    """The parity gate's batch: a runner that compiles per batch shape is checked at the shape it is timed
    and trained at (nothing to compile again); the others at the gate's usual small batch, which costs less."""
    return case.spec.batch if getattr(runner, "compiles_on_prepare", False) else job.get("parity_batch", 16)


def _prepare(job: dict[str, Any], case: Case, base: dict[str, Any], record, phase: list[str], reference=None):
    """Import, check and build the job's runner and load its data: ``(runner, train, test)``, or
    None after a ``skipped`` record. ``phase[0]`` names the step under way, for failure reasons. Once the
    runner is known to run the case, the gate's ``reference`` process (if any) is asked to prepare the gate
    while this process loads the data and builds the runner."""
    with clock("import"):
        cls = get_runner_class(job["runner"])
        base["framework"] = cls.framework
        runner = cls()
        ok = runner.supports(case)  # first: a case the runner cannot express costs no import of its framework
        if not ok.ok:
            return record("run", "skipped", ok.reason)
        ok = cls.available()
        if not ok.ok:
            return record("run", "skipped", ok.reason)
        phase[0] = "device"
        for ok in (runner.device_available(job["device"]), runner.supports_devices(job["device"], case.spec.devices)):
            if not ok.ok:
                return record("run", "skipped", ok.reason)
    if reference is not None:
        from .parity import with_deviations

        with clock("parity"):
            declared = runner.deviations(case)
            reference.prefetch("reference", case, job["device"], case.spec.seed, gate_batch(runner, case, job),
                               with_deviations(case, declared) if declared else None)
    phase[0] = "data"
    with clock("data"):
        if case.spec.dataset == "random":
            train = test = None
        else:
            train, test = load_dataset(case.spec, DataSource(job["data_root"], job.get("synthetic", False), ""))
    phase[0] = "build"
    with clock("build"):
        runner.build(case, job["device"], case.spec.seed)
        base["device"] = runner.device_label()
        runner.set_weights(init_weights(case.network, case.spec.seed))
    return runner, train, test


def precision_facts(runner, case: Case, out=None) -> dict[str, Any]:
    """What the runner really computes in (the spikes' dtype of a forward: ``out``, the forward already run
    on the timed batch, else one of a single sample) and keeps its weights in, beside what the case asked
    for (``spec.PRECISION``). Reusing the timed batch's forward spares a compiled runner a compile for a
    batch shape nothing else uses."""
    if out is None:
        with clock("precision probe"):
            out = runner.forward(np.zeros((1, case.spec.time_steps, case.network.inputs), np.float32))
    return {"requested": case.spec.dtype, "compute_dtype": out.dtype,
            "weight_dtypes": runner.weight_dtypes(), "loss_scaling": runner.loss_scaling()}


def execute(job: dict[str, Any], emit: Emit) -> None:
    if job.get("kind") == "parity":
        return execute_parity(job, emit)
    case = case_from_dict(job["case"])
    base = base_record(job, case)

    def record(metric: str, status: str = "ok", reason: str = "", **fields: Any) -> None:
        emit({"event": "record", **base, "metric": metric, "status": status, "reason": reason,
              "time": time.time(), **fields})

    phase = ["import"]
    try:
        with _reference_for_gate(job, case) as reference:
            _benchmark(job, case, base, record, emit, phase, reference)
    except Exception as exc:  # every failure is a record, never a crash of the run
        if is_disk_full(exc):  # not the job's fault: the run stops, resumable, and says why
            return _disk_full(emit, f"{phase[0]}: {failure_reason(exc)}")
        status = "oom" if is_oom(exc) else "failed"
        traceback.print_exc(file=sys.stderr)  # into the job's log file
        record("run", status, f"{phase[0]}: {failure_reason(exc)}", peak_rss_bytes=host_peak_bytes())


@contextlib.contextmanager
def _reference_for_gate(job: dict[str, Any], case: Case):
    """The reference's process for the job's parity gate (:mod:`.parity_remote`), started first so that
    it starts up while this worker imports the framework, and builds the reference and chooses the gate's
    input (:func:`_prepare` asks) while the worker loads the data and builds its runner; None for a job
    without a gate. Closed on the way out, whatever
    happened (the gate closes it as soon as it is done)."""
    if not (job.get("parity_in_worker") and job.get("check_parity", True) and job["runner"] != "reference"
            and job.get("kind") != "memory"):
        yield None
        return
    from .parity_remote import ReferenceProcess

    with clock("parity"):
        reference = ReferenceProcess()  # it starts its interpreter while this one imports the framework
    try:
        yield reference
    finally:
        reference.close()


def _benchmark(job: dict[str, Any], case: Case, base: dict[str, Any], record, emit, phase: list[str],
               reference) -> None:
    """Prepare the runner, then a memory job's phase or the benchmark's measurements (:func:`_measure`)."""
    prepared = _prepare(job, case, base, record, phase, reference)
    if prepared is None:
        return
    runner, train, test = prepared

    def refresh_info() -> None:  # compiled runners know their graphs only after compiling
        info = runner.info()
        base.update(framework=info.framework, version=info.version, mode=info.mode, runner_extra=info.extra)

    refresh_info()
    phase[0] = "measure"
    if job.get("kind") == "memory":
        return _probe_memory(job, case, runner, train, test, record)
    _measure(case, runner, train, test, record, emit, RepeatPolicy.from_dict(job.get("timing")), refresh_info,
             job, base, reference)


def _disk_full(emit: Emit, reason: str) -> None:
    """Tell the parent the disk is full (it stops the run and leaves this job unfinished), then log why."""
    emit({"event": "disk_full", "reason": reason})
    try:
        traceback.print_exc(file=sys.stderr)
    except OSError:  # the log is on the full disk too
        pass


def _measure(case: Case, runner, train, test, record, emit, policy: RepeatPolicy, refresh_info,
             job: dict[str, Any], base: dict[str, Any], reference=None) -> None:
    """The benchmark's phases in order; ``base`` holds the fields every record of the job carries;
    ``reference``: the gate's reference process (:func:`_reference_for_gate`), or None."""
    def phase(name: str) -> None:  # for the parent's progress display
        emit({"event": "progress", "what": "phase", "phase": name})

    k = measure.steps_per_sample(case)
    xs, ys = measure.timing_batches(case, test, k)
    if reference is not None:
        with clock("parity"):  # its prefetch ends before anything measured (compile included) starts
            reference.ready()
        if getattr(runner, "compiles_on_prepare", False):  # compiled once, cold, before the gate uses it
            with clock("compile"):
                runner.prepare_batch(xs[0], ys[0])
        phase("parity gate")
        with clock("parity"):
            base["parity"] = gate(job, case, runner, record, reference)
        refresh_info()
    phase("fwd and fwd+bwd timing")
    steps = measure.time_steps(runner, case, xs, ys, policy)
    refresh_info()
    phase("GEMM floor")
    try:
        with clock("gemm floor"):
            floor = measure.time_floor(runner, policy)
    except Exception as exc:  # the step timings stand without their floor
        traceback.print_exc(file=sys.stderr)
        floor = None
        record("gemm_floor", "oom" if is_oom(exc) else "failed", f"gemm floor: {failure_reason(exc)}")
    try:  # one forward of the timed network serves its precision facts, efficiency and (random input) activity
        with clock("efficiency"):
            out = runner.forward(xs[0])
    except Exception as exc:  # the efficiency says why; the timings stand
        out, efficiency = None, {"error": failure_reason(exc)}
    else:
        with clock("efficiency"):
            efficiency = measure.efficiency_of(runner, case, xs[0], out)
    # (before the first record: every record of the job carries them)
    base["precision"] = precision_facts(runner, case, out)
    measure.record_steps(record, steps, floor, k, policy, efficiency)
    if case.spec.dataset == "random":
        with clock("efficiency"):
            measure.activity(runner, xs[0], record, out if out is not None else runner.forward(xs[0]))
    if train is None or case.spec.epochs == 0:
        return
    phase("compile and training")
    with clock("consistency probes"):
        probe = measure.fwdbwd_probe(runner, xs, ys)
    measure.train(runner, case, train, test, record, emit, policy, refresh_info, probe, job.get("weights_out"))
    if case.spec.eval_time_steps:
        phase("step-by-step evaluation")
        with clock("extrapolation"):
            measure.extrapolate(case, runner, test, record)


def _probe_memory(job: dict[str, Any], case: Case, runner, train, test, record) -> None:
    """Device memory of one phase, in a worker that runs only that phase: for frameworks whose
    device peak cannot be reset (JAX), the process's peak is then the phase's."""
    xs, ys = measure.timing_batches(case, test, 1)
    measure.run_phase_once(runner, case, job["phase"], xs, ys, train, test)
    peak = runner.peak_memory_bytes()
    record("memory", unit="bytes", value=peak, peak_device_bytes=peak,
           extra={"phase": job["phase"], "source": f"{runner.device_memory_source}, in a worker that ran only "
                                                   f"the {job['phase']} phase"})


def gate(job: dict[str, Any], case: Case, runner, record, reference) -> dict[str, Any]:
    """The parity gate run on the job's own runner, before anything is measured: the reference in the
    child process ``reference`` (:mod:`.parity_remote`), closed here once the gate is done. The gate sets its own weights;
    the case's initial weights are restored after it, and checked. Emits the ``parity`` record and
    returns what the job's other records carry. A failure of the gate is its record, never the job's."""
    from .parity import compare, summary

    initial = init_weights(case.network, case.spec.seed)
    batch = gate_batch(runner, case, job)
    try:
        with reference:
            result = compare(case, job["runner"], batch=batch, seed=case.spec.seed, device=job["device"],
                             other=runner, build_reference=reference.build, choose=reference.conclusive_input)
    except Exception as exc:
        if is_disk_full(exc):
            raise
        traceback.print_exc(file=sys.stderr)
        reason = f"parity: {failure_reason(exc)}"
        record("parity", "oom" if is_oom(exc) else "failed", reason)
        status = {"status": "unknown", "summary": f"parity failed: {reason}"}
    else:
        ok = result["status"] != "skipped"
        record("parity", "ok" if ok else "skipped", summary(result), value=result["status"], extra=result)
        status = {"status": result["status"], "summary": summary(result)}
    runner.set_weights(initial)
    after = runner.get_weights()
    moved = sorted(k for k, v in initial.items() if k in after and not np.array_equal(np.asarray(after[k], np.float32), v))
    if moved:  # the benchmark must start where a job without the gate starts
        raise RuntimeError(f"the runner's weights after the parity gate differ from the initial ones: {', '.join(moved)}")
    return status


def execute_parity(job: dict[str, Any], emit: Emit) -> None:
    """The parity gate for one (case, runner) against the reference, as one ``parity`` record."""
    from .parity import compare, summary

    case = case_from_dict(job["case"])
    rec = {**base_record(job, case), "metric": "parity", "time": time.time()}
    try:
        # on the device the job is benchmarked on ('auto' resolves there as in the benchmark job)
        result = compare(case, job["runner"], batch=job.get("parity_batch", 16), seed=case.spec.seed,
                         device=job["device"])
    except Exception as exc:
        if is_disk_full(exc):
            return _disk_full(emit, f"parity: {failure_reason(exc)}")
        traceback.print_exc(file=sys.stderr)
        status = "oom" if is_oom(exc) else "failed"
        emit({"event": "record", **rec, "status": status, "reason": f"parity: {failure_reason(exc)}"})
        return
    ok = result["status"] != "skipped"
    emit({"event": "record", **rec, "status": "ok" if ok else "skipped", "reason": summary(result),
          "value": result["status"], "extra": result})
