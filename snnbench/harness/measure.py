"""The measurements of one (case, runner) job, phase by phase, each phase with its own memory peak:

* ``fwd`` / ``fwdbwd``: one batch per call (``per_call``), then ``K`` distinct batches per call
  dispatched the way the runner's training loop dispatches its steps (one compiled program for the
  JAX runners whose epoch is one program, one compiled call per step for those that loop, the Python
  loop for the eager ones), divided by ``K``. The per-step figure is the
  record's value: it is what a training step costs. Minor page faults and kernel time go with
  every sample of both.
* ``gemm_floor``: the workload's matrix products alone, in the runner's framework.
* ``train``: staging, compile (apart), epochs, evaluation. The epoch's time per batch is checked
  against the fwd+bwd time per step (``step_consistency``): two figures of the same work.

Records are emitted through ``record(metric, status, reason, **fields)``; a phase's figures are
emitted as soon as the phase ends, so a later crash keeps them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..spec import Case
from .efficiency import efficiency
from .memory import phase_memory
from .phases import phase as clock
from .timing import RepeatPolicy, Timing, summarize, time_calls

Record = Callable[..., None]

#: K distinct batches are staged for the per-step timing, within this many input bytes
STEPS_INPUT_BUDGET_BYTES = 256 * 2**20
MAX_STEPS_PER_SAMPLE = 8
#: the epoch's time per batch and the fwd+bwd time per step must agree within this factor
STEP_CONSISTENCY = 1.3


def stats_with_flag(samples: list[float], cv_threshold: float) -> dict[str, Any]:
    """:func:`summarize` plus ``unstable``: coefficient of variation above ``cv_threshold``."""
    stats = summarize(samples)
    stats["unstable"] = bool(stats["n"] > 1 and stats["cv"] > cv_threshold)
    return stats


def steps_per_sample(case: Case) -> int:
    """How many distinct batches one per-step timing sample runs (2..8, within the input budget)."""
    batch_bytes = case.spec.batch * case.spec.time_steps * case.network.inputs * 4
    return int(np.clip(STEPS_INPUT_BUDGET_BYTES // max(batch_bytes, 1), 2, MAX_STEPS_PER_SAMPLE))


def timing_batches(case: Case, test, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``K`` batches every runner is timed on, ``x [K, B, T, C]`` and ``y [K, B]``: the first
    ``K * B`` test samples (repeated if there are fewer), or for a ``random`` case seeded
    Bernoulli(``input_rate``) spikes. Batch 0 is the one-batch (per-call) input."""
    B, n = case.spec.batch, k * case.spec.batch
    if test is None:
        rng = np.random.default_rng(case.spec.seed + 4321)
        shape = (n, case.spec.time_steps, case.network.inputs)
        x = (rng.random(shape, dtype=np.float32) < case.spec.input_rate).astype(np.float32)
        y = rng.integers(0, case.network.classes, n)
    else:
        idx = np.arange(n) % len(test)
        x, y = test.dense(idx), test.labels[idx]
    return x.reshape(k, B, *x.shape[1:]), y.reshape(k, B)


def _ms(timing: Timing) -> dict[str, Any]:
    """Samples in ms with their faults and kernel time, for a record's ``extra``."""
    return {"samples": [s * 1e3 for s in timing.seconds], "warmup_ms": [s * 1e3 for s in timing.warmup_seconds],
            "minor_faults": timing.minor_faults, "sys_ms": [s * 1e3 for s in timing.sys_seconds]}


def time_steps(runner, case: Case, xs: np.ndarray, ys: np.ndarray, policy: RepeatPolicy) -> dict[str, dict]:
    """Forward and forward+backward, per call and per step; the phase's memory peak is that of
    the per-call timing (one batch live, as in a training step)."""
    out = {}
    k = len(xs)
    for metric, phase, one, many in (("fwd_ms", "fwd", runner.fwd_step, runner.fwd_steps),
                                     ("fwdbwd_ms", "fwdbwd", runner.fwdbwd_step, runner.fwdbwd_steps)):
        name = "fwd timing" if phase == "fwd" else "fwd+bwd timing"
        # (a runner that compiles on its first prepared batch, torch.compile's, compiles here, outside the phase)
        with clock("compile" if getattr(runner, "compiles_on_prepare", False) else name):
            batch = runner.prepare_batch(xs[0], ys[0])
        with clock(name):
            with phase_memory(runner, phase) as mem:
                per_call = time_calls(lambda: one(batch), runner.barrier, policy)
            batch = runner.prepare_batches(xs, ys)  # the single batch is released first
            # no warm-up where the per-call timing warmed the steps up, or the runner compiled them ahead
            warm = 0 if runner.steps_reuse_step(batch) or runner.precompile_steps(batch, phase) else None
            per_step = time_calls(lambda: many(batch), runner.barrier, policy, warmup=warm).per(k)
            batch = None
        out[metric] = {"per_step": per_step, "per_call": per_call, "memory": mem.result}
    return out


def fwdbwd_probe(runner, xs: np.ndarray, ys: np.ndarray) -> Callable[[], float]:
    """One per-step fwd+bwd sample over the same ``K`` batches as :func:`time_steps`, in ms per step."""
    batches = runner.prepare_batches(xs, ys)
    once = RepeatPolicy(warmup=0, min_repeats=1, min_time_s=0.0)
    return lambda: 1e3 * time_calls(lambda: runner.fwdbwd_steps(batches), runner.barrier, once).per(len(xs)).seconds[0]


def time_floor(runner, policy: RepeatPolicy) -> dict[str, Any] | None:
    """The GEMM floor's fwd and fwd+bwd, per call, with the phase's memory; None if not implemented."""
    floor = runner.gemm_floor()
    if floor is None:
        return None
    with phase_memory(runner, "gemm_floor") as mem:
        timings = {"fwd_ms": time_calls(floor.fwd, runner.barrier, policy),
                   "fwdbwd_ms": time_calls(floor.fwdbwd, runner.barrier, policy)}
    return {"timings": timings, "framework": floor.framework, "memory": mem.result.as_dict()}


def efficiency_of(runner, case: Case, x: np.ndarray, out=None) -> dict[str, Any]:
    """NeuroBench's metrics (:mod:`.efficiency`) of the runner's network as it is now, on the batch ``x``
    ``[B, T, C]`` (``out``: its forward result, if already run); a failure is the result's ``error``, never
    the job's."""
    try:
        out = out if out is not None else runner.forward(x)
        return efficiency(case.network, runner.get_weights(), x, out.spikes)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def record_steps(record: Record, measured: dict[str, dict], floor: dict[str, Any] | None, k: int,
                 policy: RepeatPolicy, efficiency_: dict[str, Any] | None = None) -> None:
    for metric, m in measured.items():
        per_step, per_call, mem = m["per_step"], m["per_call"], m["memory"]
        samples = [s * 1e3 for s in per_step.seconds]
        stats = stats_with_flag(samples, policy.cv_threshold)
        call_ms = _ms(per_call)
        fields: dict[str, Any] = {}
        if floor:
            floor_ms = summarize([s * 1e3 for s in floor["timings"][metric].seconds])["median"]
            fields = {"floor_ms": floor_ms, "floor_ratio": stats["median"] / floor_ms if floor_ms else None,
                      "floor_framework": floor["framework"]}
        record(metric, unit="ms", samples=samples, stats=stats, value=stats["median"],
               per_call_ms=summarize(call_ms["samples"])["median"],
               minor_faults={"per_step": float(np.median(per_step.minor_faults)),
                             "per_call": float(np.median(per_call.minor_faults))},
               sys_ms={"per_step": 1e3 * float(np.median(per_step.sys_seconds)),
                       "per_call": 1e3 * float(np.median(per_call.sys_seconds))},
               peak_rss_bytes=mem.host_peak_bytes, peak_device_bytes=mem.device_peak_bytes, memory=mem.as_dict(),
               **({"efficiency": efficiency_} if efficiency_ else {}),
               extra={"steps_per_sample": k, "per_step": _ms(per_step),
                      "per_call": {**call_ms, "stats": stats_with_flag(call_ms["samples"], policy.cv_threshold)},
                      "floor": None if not floor else {"memory": floor["memory"],
                                                       "samples_ms": [s * 1e3 for s in floor["timings"][metric].seconds]}},
               **fields)


def train(runner, case: Case, train_set, test_set, record: Record, emit, policy: RepeatPolicy,
          refresh_info: Callable[[], None], fwdbwd_probe: Callable[[], float] | None,
          weights_out: str | None = None) -> None:
    """Stage, compile (apart), train ``epochs`` epochs evaluating after each, and record; then save the
    trained canonical weights to ``weights_out`` (``.npz``) and measure the trained network's efficiency
    on the first test batch.

    ``fwdbwd_probe()`` times one per-step fwd+bwd sample (ms per step); it runs after every epoch
    whose time the check compares (those after the first, or the only one), off the epoch's clock, so
    the consistency check compares figures taken side by side (a shared machine drifts by 20% over
    minutes)."""
    with phase_memory(runner, "train") as mem:
        with clock("staging"):
            staged = runner.stage(train_set, test_set)
        with clock("compile"):
            compile_s = runner.compile()
        refresh_info()
        if compile_s is not None:
            record("compile_s", unit="s", samples=[compile_s], stats=summarize([compile_s]), value=compile_s)
            emit({"event": "progress", "what": "compile", "seconds": compile_s})
        epoch_s, curve, batches, probes = [], [], 0, []
        for epoch in range(case.spec.epochs):
            with clock("training"):
                t0 = time.perf_counter()
                res = runner.train_epoch(epoch)
                runner.barrier()
                epoch_s.append(time.perf_counter() - t0)
            batches = res.samples // case.spec.batch
            if fwdbwd_probe is not None and (epoch > 0 or case.spec.epochs == 1):  # as the epochs compared
                with clock("consistency probes"):
                    probes.append(fwdbwd_probe())
            with clock("evaluation"):
                ev = runner.evaluate()
            curve.append({"epoch": epoch + 1, "train_loss": res.loss, "train_acc": res.accuracy,
                          "test_loss": ev.loss, "test_acc": ev.accuracy, "epoch_s": epoch_s[-1],
                          "elapsed_s": float(sum(epoch_s))})
            emit({"event": "progress", "what": "epoch", "epoch": epoch + 1, "of": case.spec.epochs,
                  "seconds": epoch_s[-1], "train_loss": res.loss, "test_acc": ev.accuracy})
    with clock("efficiency"):
        trained = {"efficiency": efficiency_of(runner, case,
                                               test_set.dense(np.arange(min(case.spec.batch, len(test_set)))))}
    if weights_out:
        with clock("saving weights"):
            trained["weights"] = save_weights(runner, weights_out)
    steady = epoch_s[1:] if len(epoch_s) > 1 else epoch_s
    stats = stats_with_flag(steady, policy.cv_threshold)
    consistency = step_consistency(stats["median"], batches, probes)
    last = curve[-1]
    record("epoch_s", unit="s", samples=epoch_s, stats=stats, value=stats["median"], accuracy=last["test_acc"],
           loss=last["test_loss"], peak_rss_bytes=mem.result.host_peak_bytes,
           peak_device_bytes=mem.result.device_peak_bytes, memory=mem.result.as_dict(),
           step_consistency=consistency, **trained,
           extra={"first_epoch_s": epoch_s[0], "steady_state_epochs": len(steady), "curve": curve,
                  "batches_per_epoch": batches, "train_samples": len(train_set), "test_samples": len(test_set),
                  **staged})
    if consistency:
        emit({"event": "progress", "what": "consistency", **consistency})
    record("test_acc", unit="fraction", value=last["test_acc"], accuracy=last["test_acc"], loss=last["test_loss"],
           **trained)


def save_weights(runner, path: str) -> str:
    """The runner's canonical weights (``spec`` module docstring: names and layouts) as an ``.npz``; returns
    the path relative to the run directory (``weights/<file>``), as records name it."""
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    try:
        os.unlink(tmp)  # a leftover (or a planted link) is replaced, never written through
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v, np.float32) for k, v in runner.get_weights().items()})
        os.replace(tmp, path)  # never a half-written file under the final name
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return f"weights/{os.path.basename(path)}"


def step_consistency(epoch_s: float, batches: int, fwdbwd_ms: list[float]) -> dict[str, Any] | None:
    """The epoch's time per batch (optimizer step and data included) against the fwd+bwd time per
    step taken between the same epochs (``fwdbwd_ms``): the same work, so they must agree within
    :data:`STEP_CONSISTENCY`. Both are medians over the epochs after the first."""
    if not fwdbwd_ms or not batches:
        return None
    per_batch, per_step = 1e3 * epoch_s / batches, float(np.median(fwdbwd_ms))
    ratio = per_batch / per_step
    return {"epoch_ms_per_batch": per_batch, "fwdbwd_ms_per_step": per_step, "fwdbwd_samples_ms": fwdbwd_ms,
            "ratio": ratio, "bound": STEP_CONSISTENCY,
            "agree": bool(1 / STEP_CONSISTENCY <= ratio <= STEP_CONSISTENCY)}


def activity(runner, x: np.ndarray, record: Record, out) -> None:
    """Firing rate per spiking layer (events: non-zero outputs; integer neurons count their value)
    and, for neurons with a parallel training form, its distance from the step-by-step form; ``out`` is
    the runner's forward result on ``x``."""
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


def extrapolate(case: Case, runner, test, record: Record) -> None:
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


PHASES = ("fwd", "fwdbwd", "gemm_floor", "train")


def run_phase_once(runner, case: Case, phase: str, xs: np.ndarray, ys: np.ndarray, train_set, test_set) -> None:
    """The work of one phase (twice for the one-batch phases: the first call may compile), for a
    worker that measures only that phase's device memory."""
    if phase in ("fwd", "fwdbwd"):
        step = runner.fwd_step if phase == "fwd" else runner.fwdbwd_step
        batch = runner.prepare_batch(xs[0], ys[0])
        for _ in range(2):
            runner.barrier(step(batch))
    elif phase == "gemm_floor":
        floor = runner.gemm_floor()
        for fn in (floor.fwd, floor.fwdbwd) * 2:
            runner.barrier(fn())
    elif phase == "train":
        runner.stage(train_set, test_set)
        runner.compile()
        runner.train_epoch(0)
        runner.barrier()
        runner.evaluate()
    else:
        raise ValueError(f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
