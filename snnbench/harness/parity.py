"""The parity gate: does a runner compute the same thing as the reference?

Both runners get the same canonical weights and the same input batch. Compared:

* spikes of every spiking layer: identical, or a count of flips (a membrane within float rounding
  of the threshold can land on either side when the arithmetic order differs);
* the readout trace: ``max |a - b| / max |b| <= 1e-4`` (a network without an LI readout outputs
  its last spike train, judged like the other spikes);
* the loss: relative error ``<= 1e-5``;
* every gradient, by canonical name (a recurrent layer's ``layers.{i}.recurrent`` included; a name
  one side lacks fails the check): cosine similarity ``>= 0.999`` and relative norm error ``<= 1e-3``.

Verdicts:

* ``pass``: all hold against the canonical reference.
* ``deviates``: they do not, the runner declared why, and the declaration is *proven*: the
  reference configured with the same deviations (each :class:`~snnbench.runners.base.Deviation`
  says how, e.g. spikes from ``v_{t-1}``, reset attached) meets every tolerance above. The sizes
  against the canonical reference are reported too.
* ``fail``: a difference with no declaration, or one that the declared deviations do not explain.
* ``inconclusive``: the check could not have failed. A silent layer (no spikes) or a saturated one
  (spiking at every step) hides every difference behind it, and all-zero gradients have cosine 1
  with anything. The gate therefore picks its input: Bernoulli spikes at a few rates, and if
  needed the weights scaled up, until every reference layer fires at a rate strictly between 0
  and 1 and no gradient is all zero; when nothing works the verdict is ``inconclusive``.
* ``skipped``: a runner is missing or cannot express the case.

Precision (the case's ``dtype``): the yardstick is the reference at the same dtype. At float32 the
tolerances above hold. At bfloat16 and float16 two correct implementations already differ by the
dtype's rounding, and each rounding flip changes that neuron's later trajectory (its reset) and
everything downstream: measured on the SHD network (T 32), the reference at bfloat16 against itself
at float32 flips 20% of the spikes and leaves a gradient cosine of 0.91. So the gate measures that
noise floor on the same weights and input (the reference at the dtype against the reference at
float32) and allows a runner four times it, and never less than a minimum proportional to the dtype's
epsilon (:func:`tolerances`, the one place these figures live). The flip rate is reported. This
checks that a runner's low-precision path computes the same network to within rounding; the exact
semantics are what the float32 gate proves. Whether a runner computes in the low dtype at all is
checked apart (``ForwardResult.dtype``, ``tests/test_precision.py``): running in float32 when asked
for bfloat16 would sit inside the noise floor.

A rounding flip (a membrane within float rounding of the threshold, landing on the other side when
the arithmetic order differs, as between oneDNN and XLA convolutions) changes everything downstream
of it in that sample: the readout, the loss and the gradients drift far past the tolerances above
although both runners compute the same equations. So when the flips are few (at most one per
10,000 reference spikes), the samples that hold them are set aside, counted and reported, and the
readout, loss and gradients are compared on the remaining samples (at least half the batch), with
the same tolerances.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..runners import get_runner_class
from ..spec import Case, init_weights


@dataclass(frozen=True)
class Tolerances:
    """How far a runner may be from the reference and still compute the same network."""

    readout: float  # max |a - b| / max |b| over the readout trace
    loss: float  # relative
    grad_cosine: float  # the least cosine similarity of any gradient
    grad_norm: float  # relative error of any gradient's norm
    flips: float  # spike decisions that may differ, per reference spike


FLOAT32 = Tolerances(readout=1e-4, loss=1e-5, grad_cosine=0.999, grad_norm=1e-3, flips=1e-4)
#: machine epsilon of each compute dtype (bfloat16 keeps 8 significant bits, float16 11, float32 24)
EPS = {"float32": 2.0 ** -23, "bfloat16": 2.0 ** -7, "float16": 2.0 ** -10}
#: a low-precision runner may differ from the reference at its dtype by this many times the dtype's own
#: noise floor (the reference at the dtype against the reference at float32)
FLOOR_FACTOR = 4.0


def tolerances(dtype: str, floor: dict[str, Any] | None = None) -> Tolerances:
    """The gate's tolerances at ``dtype``. float32: :data:`FLOAT32`. Lower precision: ``FLOOR_FACTOR``
    times the measured noise floor ``floor`` (an :func:`agreement` of the reference at ``dtype``
    against itself at float32), each at least a multiple of the dtype's epsilon."""
    if dtype == "float32":
        return FLOAT32
    eps, k = EPS[dtype], FLOOR_FACTOR
    floor = floor or {}
    return Tolerances(readout=max(64 * eps, k * floor.get("readout_max_rel_err", 0.0)),
                      loss=max(eps, k * floor.get("loss_rel_err", 0.0)),
                      grad_cosine=min(1 - 8 * eps, 1 - k * (1 - floor.get("min_grad_cosine", 1.0))),
                      grad_norm=max(8 * eps, k * floor.get("max_grad_norm_rel_err", 0.0)),
                      flips=max(8 * eps, k * floor.get("flip_rate", 0.0)))
#: input spike rates tried, then weight gains, until the check is conclusive
INPUT_RATES = (0.15, 0.3, 0.05, 0.5)
WEIGHT_GAINS = (1.0, 2.0, 4.0, 8.0)


class Skip(Exception):
    """A runner cannot take part (missing, no device, cannot express the case)."""


def parity_input(case: Case, batch: int, seed: int, rate: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """One shared input: Bernoulli(``rate``) spikes ``[batch, T, C]`` and labels, from ``seed``."""
    rng = np.random.default_rng(seed + 1234)
    x = (rng.random((batch, case.spec.time_steps, case.network.inputs)) < rate).astype(np.float32)
    y = rng.integers(0, case.network.classes, batch)
    return x, y


def scaled_weights(weights: dict[str, np.ndarray], gain: float) -> dict[str, np.ndarray]:
    """Every weight (``layers.{i}.weight``, and a parallel neuron's ``psn_weight`` / ``conv_weight``)
    times ``gain``; biases and decays as they are."""
    return {k: v * np.float32(gain) if k.endswith("weight") else v for k, v in weights.items()}


def digest(value: Any) -> bytes:
    """A short fingerprint of ``value`` (weights, an input batch): equal for equal contents."""
    return hashlib.blake2b(pickle.dumps(value, protocol=5), digest_size=16).digest()


class Remembered:
    """A built runner whose ``forward`` and ``forward_backward`` results are kept, by the weights they
    were computed with and their input. The gate asks a runner for the same results more than once
    (choosing the input, then comparing; comparing against the reference, then proving a declared
    deviation against the deviated one), and a prefetch computes ahead what the gate will ask for.
    Setting the same weights again keeps the results (and the optimizer state: the gate trains nothing)."""

    def __init__(self, runner):
        self.runner, self._weights, self._kept = runner, b"", {}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        fingerprint = digest(weights)
        if fingerprint != self._weights:
            self.runner.set_weights(weights)
            self._weights, self._kept = fingerprint, {}

    def forward(self, x: np.ndarray):
        return self._once("forward", x)

    def forward_backward(self, x: np.ndarray, y: np.ndarray):
        return self._once("forward_backward", x, y)

    def _once(self, method: str, *args: np.ndarray):
        key = (method, digest(args))
        if key not in self._kept:
            self._kept[key] = getattr(self.runner, method)(*args)
        return self._kept[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)


def with_deviations(case: Case, declared) -> Case:
    """``case`` as a runner declaring the deviations ``declared`` really computes it (the reference's
    configuration that must then match the runner)."""
    for d in declared:
        case = d.reference(case)
    return case


def _build(name: str, case: Case, device: str, seed: int):
    cls = get_runner_class(name)
    if not cls.available().ok:
        raise Skip(f"{name}: {cls.available().reason}")
    runner = cls()
    for check in (runner.device_available(device), runner.supports_devices(device, case.spec.devices),
                  runner.supports(case)):
        if not check.ok:
            raise Skip(f"{name}: {check.reason}")
    runner.build(case, device, seed)
    return runner


def _vacuous(runner, x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[str], str]:
    """Layer firing rates, the names of all-zero gradients, and why the check would be vacuous ('' if not)."""
    rates = [float(np.mean(s != 0)) for s in runner.forward(x).spikes]
    silent = [i for i, r in enumerate(rates) if not 0.0 < r < 1.0]
    if silent:
        return rates, [], "spiking layer(s) " + ", ".join(f"{i} (rate {rates[i]:g})" for i in silent) + \
            " silent or saturated"
    zero = sorted(k for k, g in runner.forward_backward(x, y).grads.items() if not np.any(g))
    return rates, zero, f"all-zero gradients: {', '.join(zero)}" if zero else ""


def conclusive_input(ref, case: Case, batch: int, seed: int) -> dict[str, Any]:
    """An input on which every reference layer fires at a rate in (0, 1) and every gradient is
    non-zero; ``{"x", "y", "weights", "rate", "gain", "layer_rates"}``, or ``{"why": ...}`` if none."""
    base = init_weights(case.network, seed)
    why = ""
    for gain in WEIGHT_GAINS:
        weights = scaled_weights(base, gain)
        ref.set_weights(weights)
        for rate in INPUT_RATES:
            x, y = parity_input(case, batch, seed, rate)
            rates, _, why = _vacuous(ref, x, y)
            if not why:
                return {"x": x, "y": y, "weights": weights, "rate": rate, "gain": gain, "layer_rates": rates}
    return {"why": f"no input rate in {INPUT_RATES} with weight gains {WEIGHT_GAINS} made the check conclusive "
                   f"(last: {why})"}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(np.dot(a.ravel(), b.ravel()) / (na * nb)) if na and nb else 0.0


def agreement(ref, other, case: Case, x: np.ndarray, y: np.ndarray, tol: Tolerances = FLOAT32) -> dict[str, Any]:
    """Every comparison of the gate between two built runners holding the same weights."""
    batch = len(x)
    f_ref, f_other = ref.forward(x), other.forward(x)
    spikes, flips_per_sample = [], np.zeros(batch, np.int64)
    for i, (a, b) in enumerate(zip(f_other.spikes, f_ref.spikes)):
        assert a.shape == b.shape, f"spiking layer {i}: shape {a.shape} vs reference {b.shape}"
        flips_per_sample += (a != b).reshape(batch, -1).sum(1)
        spikes.append({"layer": i, "flips": int((a != b).sum()), "spikes_ref": int(b.sum()),
                       "rate_ref": float(b.mean())})
    assert f_other.readout.shape == f_ref.readout.shape, "readout shape differs"
    total_flips = sum(s["flips"] for s in spikes)
    spikes_ref = sum(s["spikes_ref"] for s in spikes)
    allowed_flips = max(1, int(tol.flips * spikes_ref))
    keep = np.arange(batch)
    if 0 < total_flips <= allowed_flips and (flips_per_sample == 0).sum() >= batch / 2:
        keep = np.flatnonzero(flips_per_sample == 0)  # rounding flips: compare on the clean samples
    scale = float(np.abs(f_ref.readout[keep]).max()) or 1.0
    readout_err = float(np.abs(f_other.readout[keep] - f_ref.readout[keep]).max()) / scale
    g_ref, g_other = ref.forward_backward(x[keep], y[keep]), other.forward_backward(x[keep], y[keep])
    loss_err = abs(g_other.loss - g_ref.loss) / max(abs(g_ref.loss), 1e-12)
    grads = {}
    # compared by canonical name: every one the reference has (a recurrent layer's layers.{i}.recurrent too)
    missing = sorted(set(g_ref.grads) ^ set(g_other.grads))
    for k in sorted(g_ref.grads):
        if k not in g_other.grads:
            continue
        a, b = np.asarray(g_other.grads[k], np.float64), np.asarray(g_ref.grads[k], np.float64)
        nb = np.linalg.norm(b)
        grads[k] = {"cosine": _cosine(a, b),
                    "norm_rel_err": float(abs(np.linalg.norm(a) - nb) / nb) if nb else float(np.linalg.norm(a))}
    spike_readout = case.network.layers[-1].spiking  # no LI readout: the output is the last spike train
    checks = {
        "spikes_identical": total_flips == 0,
        # a spike-train readout differs by whole spikes: it is judged by the flip allowance below
        "readout": total_flips <= allowed_flips if spike_readout else readout_err <= tol.readout,
        "loss": loss_err <= tol.loss,
        "grads": not missing and all(g["cosine"] >= tol.grad_cosine and g["norm_rel_err"] <= tol.grad_norm
                                     for g in grads.values()),
    }
    # A handful of flips from arithmetic order is not a semantic difference; everything else must hold.
    agrees = checks["readout"] and checks["loss"] and checks["grads"] and total_flips <= allowed_flips
    return {"agrees": agrees, "checks": checks, "spikes": spikes, "readout_max_rel_err": readout_err,
            "loss_ref": g_ref.loss, "loss": g_other.loss, "loss_rel_err": loss_err, "grads": grads,
            "grads_missing": missing,
            "min_grad_cosine": min((g["cosine"] for g in grads.values()), default=0.0),
            "max_grad_norm_rel_err": max((g["norm_rel_err"] for g in grads.values()), default=float("inf")),
            "flip_rate": total_flips / max(spikes_ref, 1), "samples_set_aside": int(batch - len(keep))}


def compare(case: Case, runner: str, reference: str = "reference", batch: int = 16, seed: int = 0,
            device: str = "cpu", other=None, build_reference=None, choose=None) -> dict[str, Any]:
    """Run the parity gate for ``runner`` against ``reference`` on ``case``, on ``device``.

    ``other``: the runner, already built for ``case`` (the benchmark worker's own; its weights are the
    gate's to set). ``build_reference(name, case, device, seed)``: how reference runners are made (default:
    here, in this process; :mod:`.parity_remote` makes them in a child process). ``choose(ref, case, batch,
    seed)``: how the conclusive input is found (default :func:`conclusive_input`, here)."""
    result: dict[str, Any] = {"runner": runner, "reference": reference, "case": case.id, "batch": batch,
                              "device": device}
    build = build_reference or _build
    try:
        other = other if other is not None else _build(runner, case, device, seed)
        ref = build(reference, case, device, seed)
    except Skip as exc:
        return {**result, "status": "skipped", "reason": str(exc)}
    declared = other.deviations(case)
    result["deviations"] = [d.text for d in declared]
    chosen = (choose or conclusive_input)(ref, case, batch, seed)
    if "why" in chosen:
        return {**result, "status": "inconclusive", "reason": chosen["why"]}
    x, y = chosen["x"], chosen["y"]
    result["input"] = {k: chosen[k] for k in ("rate", "gain", "layer_rates")}
    other = Remembered(other)  # a declared deviation's proof asks it for the same forward and backward again
    other.set_weights(chosen["weights"])
    tol = tolerances(case.spec.dtype, _noise_floor(ref, case, reference, chosen, device, seed, build))
    result["tolerances"] = vars(tol)
    result.update(agreement(ref, other, case, x, y, tol))
    if result["agrees"]:
        return {**result, "status": "pass", "reason": ""}
    if not declared:
        return {**result, "status": "fail", "reason": "differs from the reference: " + failed_checks(result)}
    return {**result, **_prove(declared, case, reference, other, chosen, device, seed, build)}


def _noise_floor(ref, case: Case, reference: str, chosen: dict[str, Any], device: str,
                 seed: int, build=_build) -> dict[str, Any] | None:
    """How far rounding alone moves the reference at a low dtype: the reference at float32 against
    ``ref`` (at ``case``'s dtype) on the chosen weights and input. None at float32."""
    if case.spec.dtype == "float32":
        return None
    exact_case = replace(case, spec=replace(case.spec, dtype="float32"))
    exact = build(reference, exact_case, device, seed)
    exact.set_weights(chosen["weights"])
    return agreement(exact, ref, case, chosen["x"], chosen["y"], tolerances(case.spec.dtype))


def _prove(declared, case: Case, reference: str, other, chosen: dict[str, Any], device: str,
           seed: int, build=_build) -> dict[str, Any]:
    """Status and reason of a declared deviation: the reference configured the same way must match."""
    deviated = with_deviations(case, declared)
    texts = "; ".join(d.text for d in declared)
    try:
        ref = build(reference, deviated, device, seed)
    except Skip as exc:
        return {"status": "fail", "reason": f"declared deviations ({texts}) cannot be reproduced: {exc}"}
    ref.set_weights(chosen["weights"])
    x, y = chosen["x"], chosen["y"]
    _, _, why = _vacuous(ref, x, y)
    if why:
        return {"status": "inconclusive", "reason": f"the reference with the declared deviations: {why}"}
    # at a low dtype the deviated network has its own rounding floor (a different reset, say)
    tol = tolerances(deviated.spec.dtype, _noise_floor(ref, deviated, reference, chosen, device, seed, build))
    proof = agreement(ref, other, deviated, x, y, tol)
    if proof["agrees"]:
        return {"status": "deviates", "reason": texts, "proof": proof}
    return {"status": "fail", "proof": proof,
            "reason": f"declared deviations ({texts}) do not account for the difference: {failed_checks(proof)}"}


def failed_checks(m: dict[str, Any]) -> str:
    """What an :func:`agreement` result failed on, with the measured sizes."""
    parts = []
    flips = sum(s["flips"] for s in m["spikes"])
    if flips and not m["agrees"]:
        parts.append(f"{flips} spike flips")
    if not m["checks"]["readout"]:
        parts.append(f"readout err {m['readout_max_rel_err']:.1e}")
    if not m["checks"]["loss"]:
        parts.append(f"loss err {m['loss_rel_err']:.1e}")
    if m.get("grads_missing"):
        parts.append(f"gradients not named alike: {', '.join(m['grads_missing'])}")
    if not m["checks"]["grads"]:
        parts.append(f"min grad cosine {m['min_grad_cosine']:.5f}, max grad norm err {m['max_grad_norm_rel_err']:.1e}")
    return ", ".join(parts) or "no check failed"


def _sizes(m: dict[str, Any]) -> str:
    return (f"spike flips {sum(s['flips'] for s in m['spikes'])} ({100 * m.get('flip_rate', 0.0):.1f}%), readout err {m['readout_max_rel_err']:.1e}, "
            f"loss err {m['loss_rel_err']:.1e}, min grad cosine {m['min_grad_cosine']:.5f}, "
            f"max grad norm err {m['max_grad_norm_rel_err']:.1e}")


def summary(result: dict[str, Any]) -> str:
    """One line: the verdict and the measured sizes."""
    if result["status"] == "skipped" or "spikes" not in result:
        return f"{result['status']}: {result['reason']}" if result["status"] != "skipped" else result["reason"]
    text = f"{result['status']}: {_sizes(result)}"
    if result.get("samples_set_aside"):
        text += f", {result['samples_set_aside']} of {result['batch']} samples with flips set aside"
    if result["status"] == "deviates":
        return text + f" ({result['reason']}; proven: the reference with them gives {_sizes(result['proof'])})"
    return text + (f" ({result['reason']})" if result.get("reason") else "")


def deviated_case(case: Case, runner_name: str) -> Case:
    """The case a runner really computes (its declared deviations applied), for tests and tools."""
    runner = get_runner_class(runner_name)()
    out = case
    for d in runner.deviations(case):
        out = d.reference(out)
    return out
