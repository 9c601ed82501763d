"""Run one (case, runner) job and emit its records. Called inside a worker process.

``emit(event)`` receives dicts: ``{"event": "record", ...}`` for results, ``{"event": "progress", ...}``
for the parent's progress display. Every failure becomes a record with a status and a reason; no
exception escapes :func:`execute`.
"""

from __future__ import annotations

import resource
import sys
import time
import traceback
from typing import Any, Callable

import numpy as np

from ..data import DataSource, load_dataset
from ..runners import get_runner_class
from ..spec import Case, case_from_dict, init_weights
from .timing import RepeatPolicy, summarize, time_calls

Emit = Callable[[dict[str, Any]], None]


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


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
        "device": job["device"],
        "dtype": s.dtype,
        "shape": case.shape(),
        "hyper": {"epochs": s.epochs, "lr": s.lr, "optimizer": s.optimizer, "loss": s.loss,
                  "augment_shift": s.augment_shift, "seed": s.seed},
        "data": {"note": job.get("data_note"), "synthetic": job.get("synthetic")},
        "parity": job.get("parity"),
    }


def execute(job: dict[str, Any], emit: Emit) -> None:
    if job.get("kind") == "parity":
        return execute_parity(job, emit)
    case = case_from_dict(job["case"])
    base = base_record(job, case)

    def record(metric: str, status: str = "ok", reason: str = "", **fields: Any) -> None:
        emit({"event": "record", **base, "metric": metric, "status": status, "reason": reason,
              "time": time.time(), **fields})

    phase = "import"
    try:
        cls = get_runner_class(job["runner"])
        base["framework"] = cls.framework
        ok = cls.available()
        if not ok.ok:
            return record("run", "skipped", ok.reason)
        runner = cls()
        phase = "device"
        ok = runner.device_available(job["device"])
        if not ok.ok:
            return record("run", "skipped", ok.reason)
        ok = runner.supports(case)
        if not ok.ok:
            return record("run", "skipped", ok.reason)
        phase = "data"
        if case.spec.dataset == "random":
            train = test = None
        else:
            train, test = load_dataset(case.spec, DataSource(job["data_root"], job.get("synthetic", False), ""))
        phase = "build"
        runner.build(case, job["device"], case.spec.seed)
        runner.set_weights(init_weights(case.network, case.spec.seed))
        info = runner.info()
        base.update(framework=info.framework, version=info.version, mode=info.mode, runner_extra=info.extra)
        _measure(job, case, runner, train, test, record, emit, policy=RepeatPolicy.from_dict(job.get("timing")))
    except Exception as exc:  # every failure is a record, never a crash of the run
        status = "oom" if is_oom(exc) else "failed"
        traceback.print_exc(file=sys.stderr)  # into the job's log file
        record("run", status, f"{phase}: {failure_reason(exc)}", peak_rss_bytes=peak_rss_bytes())


def stats_with_flag(samples: list[float], cv_threshold: float) -> dict[str, Any]:
    """:func:`summarize` plus ``unstable``: coefficient of variation above ``cv_threshold``."""
    stats = summarize(samples)
    stats["unstable"] = bool(stats["n"] > 1 and stats["cv"] > cv_threshold)
    return stats


def one_batch(case: Case, test) -> tuple[np.ndarray, np.ndarray]:
    """The batch every runner is timed on: the first test samples (tiled to a full batch), or for a
    ``random`` case one seeded Bernoulli(``input_rate``) spike input."""
    B = case.spec.batch
    if test is None:
        rng = np.random.default_rng(case.spec.seed + 4321)
        shape = (B, case.spec.time_steps, case.network.inputs)
        x = (rng.random(shape, dtype=np.float32) < case.spec.input_rate).astype(np.float32)
        return x, rng.integers(0, case.network.outputs, B)
    n = min(B, len(test))
    x, y = test.dense(slice(0, n)), test.labels[:n]
    if n < B:
        reps = -(-B // n)
        x, y = np.concatenate([x] * reps)[:B], np.concatenate([y] * reps)[:B]
    return x, y


def _activity(case: Case, runner, x: np.ndarray, record) -> None:
    """Firing rate per spiking layer (events: non-zero outputs; integer neurons count their value)
    and, for neurons with a parallel training form, its distance from the step-by-step form."""
    out = runner.forward(x)
    layers = [{"rate": float(np.mean(s != 0)), "events": float(np.sum(s))} for s in out.spikes]
    if layers:
        record("firing_rate", unit="fraction", value=float(np.mean([la["rate"] for la in layers])),
               extra={"layers": layers})
    serial = runner.serial_forward(x)
    if serial is not None:  # value: the fraction of outputs on which the two forms disagree
        err = float(np.max(np.abs(serial.readout - out.readout)))
        flips = [float(np.mean(a != b)) for a, b in zip(serial.spikes, out.spikes)]
        record("parallel_error", unit="fraction", value=max(flips) if flips else 0.0,
               extra={"max_abs_readout_err": err, "output_mismatch_fraction": flips})


def _measure(job, case, runner, train, test, record, emit, policy: RepeatPolicy) -> None:
    x, y = one_batch(case, test)

    # One batch, forward and forward+backward: the same input for every runner.
    batch = runner.prepare_batch(x, y)
    measured = {}
    for metric, step in (("fwd_ms", runner.fwd_step), ("fwdbwd_ms", runner.fwdbwd_step)):
        warm: list[float] = []
        samples = [s * 1e3 for s in time_calls(lambda: step(batch), runner.barrier, policy, warm)]
        measured[metric] = (samples, warm)
    del batch
    floors = runner.gemm_floor(policy)  # the workload's matrix products alone, same worker
    for metric, (samples, warm) in measured.items():
        stats = stats_with_flag(samples, policy.cv_threshold)
        fields = {}
        if floors and floors.get(metric):
            floor = summarize([f * 1e3 for f in floors[metric]])["median"]
            fields = {"floor_ms": floor, "floor_ratio": stats["median"] / floor if floor else None,
                      "floor_framework": floors.get("framework")}
        record(metric, unit="ms", samples=samples, stats=stats, value=stats["median"],
               peak_rss_bytes=peak_rss_bytes(), peak_device_bytes=runner.peak_memory_bytes(),
               extra={"warmup_ms": [w * 1e3 for w in warm]}, **fields)
    if case.spec.dataset == "random":
        _activity(case, runner, x, record)
    if train is None or case.spec.epochs == 0:
        return

    # Training: staging, compile (first-call cost, apart), epochs.
    staged = runner.stage(train, test)
    runner.reset_peak_memory()
    compile_s = runner.compile()
    if compile_s is not None:
        record("compile_s", unit="s", samples=[compile_s], stats=summarize([compile_s]), value=compile_s)
        emit({"event": "progress", "what": "compile", "seconds": compile_s})
    epoch_s, curve = [], []
    for epoch in range(case.spec.epochs):
        t0 = time.perf_counter()
        res = runner.train_epoch(epoch)
        runner.barrier()
        epoch_s.append(time.perf_counter() - t0)
        ev = runner.evaluate()
        curve.append({"epoch": epoch + 1, "train_loss": res.loss, "train_acc": res.accuracy,
                      "test_loss": ev.loss, "test_acc": ev.accuracy, "epoch_s": epoch_s[-1],
                      "elapsed_s": float(sum(epoch_s))})
        emit({"event": "progress", "what": "epoch", "epoch": epoch + 1, "of": case.spec.epochs,
              "seconds": epoch_s[-1], "train_loss": res.loss, "test_acc": ev.accuracy})
    steady = epoch_s[1:] if len(epoch_s) > 1 else epoch_s
    stats = stats_with_flag(steady, policy.cv_threshold)
    last = curve[-1]
    record(
        "epoch_s",
        unit="s",
        samples=epoch_s,
        stats=stats,
        value=stats["median"],
        accuracy=last["test_acc"],
        loss=last["test_loss"],
        peak_rss_bytes=peak_rss_bytes(),
        peak_device_bytes=runner.peak_memory_bytes(),
        extra={"first_epoch_s": epoch_s[0], "steady_state_epochs": len(steady), "curve": curve,
               "train_samples": len(train), "test_samples": len(test), **staged},
    )
    record("test_acc", unit="fraction", value=last["test_acc"], accuracy=last["test_acc"], loss=last["test_loss"])
    if case.spec.eval_time_steps:
        _extrapolate(case, runner, test, record)


def _extrapolate(case: Case, runner, test, record) -> None:
    """Accuracy of the trained network, step by step, at the training length and longer ones."""
    from ..data.cue import make_cue_split

    s = case.spec
    for T in (s.time_steps, *s.eval_time_steps):
        data = test if T == s.time_steps else make_cue_split(len(test), T, s.channels, s.seed * 3 + 2)
        fields = {"extra": {"T": T, "train_T": s.time_steps}}
        try:
            ev = runner.evaluate_at(data)
        except NotImplementedError as exc:
            record("extrap_acc", "skipped", str(exc), **fields)
            continue
        record("extrap_acc", unit="fraction", value=ev.accuracy, accuracy=ev.accuracy, loss=ev.loss, **fields)


def execute_parity(job: dict[str, Any], emit: Emit) -> None:
    """The parity gate for one (case, runner) against the reference, as one ``parity`` record."""
    from .parity import compare, summary

    case = case_from_dict(job["case"])
    rec = {**base_record(job, case), "metric": "parity", "time": time.time()}
    try:
        result = compare(case, job["runner"], batch=job.get("parity_batch", 16), seed=case.spec.seed,
                         device=job["device"] if job["device"] != "auto" else "cpu")
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        status = "oom" if is_oom(exc) else "failed"
        emit({"event": "record", **rec, "status": status, "reason": f"parity: {failure_reason(exc)}"})
        return
    ok = result["status"] != "skipped"
    emit({"event": "record", **rec, "status": "ok" if ok else "skipped", "reason": summary(result),
          "value": result["status"], "extra": result})
