"""``snnbench check-runner NAME``: what a runner must hold before anyone publishes its figures.

Each check yields :class:`Check` items; the runner conforms when every one is ``ok``:

* **parity**: the parity gate (:mod:`.parity`) on every distinct network (and dtype) of the suites that
  run it, at a reduced length; ``pass``, or ``deviates`` with each deviation proven on the reference;
* **refusals**: a case the runner cannot express is refused by ``supports`` with a reason, and a case it
  accepts does not then fail to build or run (an unreported unsupported case);
* **dtype**: for each compute dtype the runner claims, its forward really computes in that dtype
  (``ForwardResult.dtype``);
* **step consistency**: an epoch's time per batch against the timed forward+backward per step, as the
  harness compares them in every run (within :data:`.measure.STEP_CONSISTENCY`; measured twice before
  it fails: a shared machine can be off once);
* **compiled graphs**: a compiled runner compiled to the graphs it claims (``compiled_graphs``), with no
  graph break or recompile;
* **own loop**: where the runner names its framework's idiomatic training loop (``Runner.idiomatic``),
  the same loss and gradients as that loop, and a training step no more than :data:`OWN_LOOP_BOUND` of
  its time (measured twice before it fails).
"""

from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np

from ..data.staging import SpikeDataset, pack
from ..runners import get_runner_class
from ..spec import Case, init_weights, parse_suite
from . import parity
from .measure import STEP_CONSISTENCY, fwdbwd_probe

#: the parity checks' sequence length (a multiple of 8) and batch: small, the same network
PARITY_T, PARITY_BATCH = 16, 8
#: adapter / the framework's own loop, per training step
OWN_LOOP_BOUND = 1.10


@dataclass
class Check:
    check: str  # parity | refusals | dtype | step consistency | compiled graphs | own loop | available
    subject: str  # the case, dtype or shape it was made on
    ok: bool
    detail: str = ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def suite_cases(name: str, suites: list) -> list[Case]:
    """Every case of ``suites`` (quick variants, loaded :class:`~snnbench.spec.Suite` objects) that run
    ``name``, one per distinct (network, dtype, loss), at the parity length."""
    seen, out = set(), []
    for suite in suites:
        if "all" not in suite.runners and name not in suite.runners:
            continue
        for case in suite.cases:
            key = (case.network, case.spec.dtype, case.spec.loss, case.spec.devices)
            if key in seen:
                continue
            seen.add(key)
            network = replace(case.network, time_steps=PARITY_T) if case.network.time_steps else case.network
            out.append(replace(case, network=network,
                               spec=replace(case.spec, time_steps=PARITY_T, eval_time_steps=())))
    return out


def check_cases(name: str, cases: list[Case], device: str) -> Iterator[Check]:
    """Parity on every case the runner accepts; a reason on every case it refuses."""
    cls = get_runner_class(name)
    for case in cases:
        supported = cls().supports(case)
        if not supported.ok:
            yield Check("refusals", case.id, bool(supported.reason.strip()),
                        f"refused: {supported.reason}" if supported.reason.strip() else "refused without a reason")
            continue
        try:
            if name == "reference":  # the yardstick: nothing to compare it with, but it must run the case
                runner = cls()
                runner.build(case, device, case.spec.seed)
                runner.forward_backward(*parity.parity_input(case, PARITY_BATCH, 0))
                yield Check("runs", case.id, True, "builds, forward and backward")
                continue
            res = parity.compare(case, name, batch=PARITY_BATCH, seed=case.spec.seed, device=device)
        except Exception as exc:  # accepted, then failed: a case it should have refused
            yield Check("refusals", case.id, False, f"supports() accepts it but the runner fails: {_first_line(exc)}")
            continue
        status = res["status"]
        yield Check("parity", case.id, status in ("pass", "deviates"), parity.summary(res))


def _dtype_case(dtype: str) -> Case:
    net = {"neuron": {"beta": 0.9, "threshold": 1.0}, "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": 32}, {"type": "lif"}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "check", "defaults": {"time_steps": PARITY_T, "channels": 32, "batch": 8,
                                                       "dtype": dtype}, "network": net, "cases": [{"id": f"mlp-{dtype}"}]},
                       "check-runner").cases[0]


def check_dtypes(name: str, device: str) -> Iterator[Check]:
    """Each claimed dtype computes in that dtype; each other one is refused with a reason."""
    from ..spec import PRECISION

    cls = get_runner_class(name)
    expressed = cls().supports(_dtype_case("float32"))
    if not expressed.ok and "float32" in cls.dtypes:  # a runner of other networks (the long-sequence neurons)
        yield Check("dtype", "float32", True, f"not run: {expressed.reason}")
        return
    for dtype in PRECISION:
        case = _dtype_case(dtype)
        supported = cls().supports(case)
        if dtype not in cls.dtypes:
            yield Check("dtype", dtype, not supported.ok and bool(supported.reason),
                        "not claimed; refused: " + (supported.reason or "(accepted without claiming it)"))
            continue
        if not supported.ok:
            yield Check("dtype", dtype, False, f"claimed in dtypes but refused: {supported.reason}")
            continue
        try:
            runner = cls()
            runner.build(case, device, 0)
            runner.set_weights(init_weights(case.network, 0))
            x, _ = parity.parity_input(case, 8, 0)
            got = runner.forward(x).dtype
        except Exception as exc:
            yield Check("dtype", dtype, False, f"claimed but fails: {_first_line(exc)}")
            continue
        yield Check("dtype", dtype, got == dtype, f"computes in {got}")


def _random_split(case: Case, n: int, seed: int) -> SpikeDataset:
    rng = np.random.default_rng(seed)
    x = (rng.random((n, case.spec.time_steps, case.network.inputs)) < 0.1).astype(np.uint8)
    return SpikeDataset(pack(x), rng.integers(0, case.network.classes, n).astype(np.int32), case.spec.time_steps)


def step_case(T: int = 64, B: int = 64) -> Case:
    """The SHD suite's network at a reduced T and batch, for the timing checks."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, "reset": "subtract", "detach_reset": True},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": 128}, {"type": "lif"}, {"type": "linear", "out": 128},
                      {"type": "lif"}, {"type": "linear", "out": 20}, {"type": "li"}]}
    return parse_suite({"suite": "check", "defaults": {"time_steps": T, "channels": 128, "batch": B, "epochs": 3,
                                                       "lr": 0.002}, "network": net, "cases": [{"id": f"shd-T{T}-B{B}"}]},
                       "check-runner").cases[0]


def _step_ratio(runner, case: Case, train: SpikeDataset) -> tuple[float, float, float]:
    """(epoch ms per batch, fwd+bwd ms per step, their ratio): the second of two epochs against the
    median of three K-step probes taken right after it."""
    batches = len(train) // case.spec.batch
    runner.train_epoch(0)
    start = time.perf_counter()
    runner.train_epoch(1)
    per_batch = 1e3 * (time.perf_counter() - start) / batches
    k = min(batches, 4)
    x = np.unpackbits(train.packed[: k * case.spec.batch], axis=1)[:, : case.spec.time_steps].astype(np.float32)
    xs = x.reshape(k, case.spec.batch, case.spec.time_steps, -1)
    ys = train.labels[: k * case.spec.batch].reshape(k, case.spec.batch)
    probe = fwdbwd_probe(runner, xs, ys)
    probe()  # warm
    per_step = float(np.median([probe() for _ in range(3)]))
    return per_batch, per_step, per_batch / per_step


def check_training(name: str, device: str) -> Iterator[Check]:
    """Step consistency, and for a compiled runner its graphs, on the SHD network at T 64, B 64."""
    cls = get_runner_class(name)
    case = step_case()
    if not cls().supports(case).ok:
        yield Check("step consistency", case.id, True, f"not run: {cls().supports(case).reason}")
        return
    try:
        runner = cls()
        runner.build(case, device, 0)
        runner.set_weights(init_weights(case.network, 0))
        train, test = _random_split(case, 8 * case.spec.batch, 1), _random_split(case, case.spec.batch, 2)
        runner.stage(train, test)
        runner.compile()
        measured = [_step_ratio(runner, case, train)]
        if not 1 / STEP_CONSISTENCY <= measured[-1][2] <= STEP_CONSISTENCY:
            measured.append(_step_ratio(runner, case, train))  # a busy machine can be off once
    except Exception as exc:
        yield Check("step consistency", case.id, False, f"training failed: {_first_line(exc)}\n"
                    + traceback.format_exc(limit=3))
        return
    per_batch, per_step, ratio = measured[-1]
    yield Check("step consistency", case.id, 1 / STEP_CONSISTENCY <= ratio <= STEP_CONSISTENCY,
                f"epoch {per_batch:.2f} ms per batch vs fwd+bwd {per_step:.2f} ms per step: {ratio:.2f}x "
                f"(bound {STEP_CONSISTENCY}x{', measured twice' if len(measured) > 1 else ''})")
    if cls.compiled_graphs:
        extra = runner.info().extra
        graphs, breaks, recompiles = (extra.get(k) for k in ("graphs", "graph_breaks", "recompiles"))
        yield Check("compiled graphs", case.id, graphs == cls.compiled_graphs and not breaks and not recompiles,
                    f"{graphs} graph(s) (claims {cls.compiled_graphs}), {breaks} break(s), {recompiles} recompile(s)")


def check_own_loop(name: str, T: int = 32, B: int = 32) -> Iterator[Check]:
    """The adapter against its framework's own idiomatic loop (``Runner.idiomatic``), where it has one."""
    cls = get_runner_class(name)
    if not cls.idiomatic:
        return
    try:
        module = importlib.import_module(cls.idiomatic)
    except ImportError as exc:
        yield Check("own loop", cls.idiomatic, True, f"not run: {cls.idiomatic} is not importable here ({exc}); "
                                                     "run check-runner from a snnbench checkout")
        return
    kwargs = {"compiled": True} if cls.eager_twin else {}
    per_epoch = "batches" in module.compare.__code__.co_varnames
    runs = []
    for _ in range(2):  # a busy machine can be off once; a real slowdown is off twice
        runs.append(module.compare(time_steps=T, batch=B, rounds=3 if per_epoch else 5, steps=1 if per_epoch else 3,
                                   **kwargs))
        if runs[-1]["ratio"] <= OWN_LOOP_BOUND:
            break
    r = runs[-1]
    loss_tol, grad_tol = cls.idiomatic_tolerance
    same = r["loss_rel_err"] <= loss_tol and r["grad_rel_err"] <= grad_tol
    yield Check("own loop", f"T{T}-B{B}", same and r["ratio"] <= OWN_LOOP_BOUND,
                f"loss rel err {r['loss_rel_err']:.1e} (<= {loss_tol:g}), grad rel err {r['grad_rel_err']:.1e} "
                f"(<= {grad_tol:g}); adapter / own loop {r['ratio']:.3f} (bound {OWN_LOOP_BOUND}"
                f"{', measured twice' if len(runs) > 1 else ''})")


def check_runner(name: str, suites: list, device: str = "cpu", own_loop: bool = True,
                 timing: bool = True) -> Iterator[Check]:
    """Every check on ``name`` (see the module's docstring), as they complete."""
    cls = get_runner_class(name)
    available = cls.available()
    if not available.ok:
        yield Check("available", name, False, available.reason)
        return
    yield from check_cases(name, suite_cases(name, suites), device)
    yield from check_dtypes(name, device)
    if timing:
        yield from check_training(name, device)
        if own_loop:
            yield from check_own_loop(name)
