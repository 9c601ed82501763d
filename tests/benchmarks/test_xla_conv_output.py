"""Where XLA:CPU's convolution loses its time: writing its output. XLA's own forward convolution
(``lax.conv_general_dilated``, channels-last, its YNNPACK fusion) at the nmnist suite's shapes, two ways:

* ``xla_written``: the output stored, as a network needs it (the next layer, a LIF time loop, reads it);
* ``xla_reduced``: the same convolution with a sum over the output's width axis after it, which XLA puts
  inside the same YNNPACK fusion (``[N, H', W', O]`` -> ``[N, H', O]``: every output value is computed,
  one in ``W'`` is stored);

beside the reference's patch form (:func:`snnbench.runners.reference.conv.conv2d`) and PyTorch's oneDNN
convolution on channels-last frames (as ``torch.compile`` hands it over: ``norse-compile``'s), all forward
only, :data:`REPEATS` sets of 1024 frames per timed call.

On the AVX-512 host of docs/reference-performance.md's seventh look the reduced form ran within 1.12x of
oneDNN and the written one 5.6-9.1x slower than the reduced one: the kernel XLA:CPU has is not the limit,
its schedule for a stored output is, and no JAX-level formulation reaches the fast one for an output a
network keeps. (m1's first layer, 2 -> 12 channels, is not given to YNNPACK at all, only its sum is, so
there the two forms are alike and not compared; m2's, 2 -> 24 channels, is.) ``test_written_output_ratios`` (a ``bench_check``)
asserts that on such a host for every layer whose convolution and sum share one fusion: when a release
stores the output as fast as it reduces it, the check fails, and the reference should use XLA's own
convolution.

    python -m tests.benchmarks.test_xla_conv_output      # the worker: JSON medians, ms per 1024 frames
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from snnbench.harness.timing import RepeatPolicy, time_calls

from .conftest import avx512_host, checked_in_worker
from .test_xla_conv import FRAMES, LAYERS, REPEATS
from .test_xla_conv import _arrays as nchw_arrays

#: the written output at least this many times the reduced one, at every layer (5-9x measured)
WRITTEN_OVER_REDUCED_AT_LEAST = 2.0

pytest.importorskip("jax")


def _arrays(layer: str):
    """``x [REPEATS, FRAMES, H, W, C]`` spikes and ``w [k, k, C, O]``: the convolution check's arrays,
    channels-last."""
    x, w, _ = nchw_arrays(layer)
    return x.transpose(0, 1, 3, 4, 2), w.transpose(2, 3, 1, 0)


def xla_conv(x, w):
    import jax

    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _reference_conv(x, w):
    from snnbench.runners.reference.conv import conv2d

    return conv2d(x, w)


FUNCTIONS = {
    "xla_written": xla_conv,
    "xla_reduced": lambda x, w: xla_conv(x, w).sum(axis=2),
    "patches": _reference_conv,
}


def jax_step(form: str, layer: str):
    """``FUNCTIONS[form]`` over the sets in one ``lax.scan``; each set's result passes an optimisation
    barrier whole, so XLA computes and stores all of it."""
    import jax

    fn = FUNCTIONS[form]

    def sets(x, w):
        def one(_, xc):
            return None, jax.lax.optimization_barrier(fn(xc, w)).reshape(-1)[:1]

        return jax.lax.scan(one, None, x)[1]

    x, w = (jax.numpy.asarray(a) for a in _arrays(layer))  # arguments, not constants XLA could fold
    f = jax.jit(sets)
    return lambda: jax.block_until_ready(f(x, w))


def fused_reduction(layer: str) -> bool:
    """Whether XLA compiles ``xla_reduced`` with the convolution and the sum in one YNNPACK fusion (it does not
    at m1's first layer, whose convolution stays outside YNNPACK)."""
    import jax

    x, w = _arrays(layer)
    text = jax.jit(FUNCTIONS["xla_reduced"]).lower(x[0], w).compile().as_text()
    computations = text.split("\n\n")
    return any("convolution(" in c and "reduce(" in c for c in computations) and '"__ynn_fusion"' in text


def torch_step(layer: str):
    """PyTorch's ``conv2d`` forward on channels-last frames, set after set, no autograd."""
    torch = pytest.importorskip("torch")
    x, w, _ = nchw_arrays(layer)
    xs = [torch.tensor(a).contiguous(memory_format=torch.channels_last) for a in x]
    wt = torch.tensor(w)

    def step():
        with torch.no_grad():
            for xc in xs:
                torch.nn.functional.conv2d(xc, wt)

    return step


FORMS = {**{form: functools.partial(jax_step, form) for form in FUNCTIONS}, "torch_cl": torch_step}


@pytest.mark.parametrize("layer", ["m1-conv2"])
@pytest.mark.parametrize("form", FORMS)
def test_conv_forward(benchmark, form, layer):
    step = FORMS[form](layer)
    step()  # compile outside the timed function
    benchmark(step)


def measure() -> dict[str, dict[str, float]]:
    """Every form at every layer, alternated over three rounds: ``{form: {layer: median ms per FRAMES frames}}``
    and ``fused: {layer: 1.0 or 0.0}``."""
    steps = {(form, layer): FORMS[form](layer) for form in FORMS for layer in LAYERS}
    for step in steps.values():
        step()
    policy = RepeatPolicy(warmup=1, min_repeats=3, min_time_s=0.0)
    ms: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    for _ in range(3):
        for key, step in steps.items():
            ms[key] += [1e3 * s for s in time_calls(step, lambda _: None, policy).per(REPEATS).seconds]
    out: dict[str, dict[str, float]] = {form: {} for form in FORMS}
    for (form, layer), samples in ms.items():
        out[form][layer] = float(np.median(samples))
    out["fused"] = {layer: float(fused_reduction(layer)) for layer in LAYERS}
    return out


def describe(medians: dict[str, dict[str, float]]) -> str:
    lines = []
    for layer in LAYERS:
        written, reduced, patches, cl = (medians[form][layer] for form in FORMS)
        lines.append(f"{layer} forward, {FRAMES} frames: XLA written {written:.1f} ms, XLA reduced in its fusion "
                     f"{reduced:.1f} ms, patches {patches:.1f} ms, torch channels-last {cl:.1f} ms -> written / "
                     f"reduced {written / reduced:.2f}x, reduced / torch {reduced / cl:.2f}x, patches / torch "
                     f"{patches / cl:.2f}x{'' if medians['fused'][layer] else ' (convolution outside the fusion: not compared)'}")
    return "\n".join(lines)


def holds(medians) -> bool:
    """The claims: XLA fuses the sum into the convolution's fusion at m1-conv2 (else the comparison means
    nothing), and on an AVX-512 host every layer whose sum is fused stores its output at least
    :data:`WRITTEN_OVER_REDUCED_AT_LEAST` times slower than it reduces it."""
    fused = [layer for layer in LAYERS if medians["fused"][layer]]
    return "m1-conv2" in fused and (not avx512_host() or all(
        medians["xla_written"][layer] >= WRITTEN_OVER_REDUCED_AT_LEAST * medians["xla_reduced"][layer]
        for layer in fused))


@pytest.mark.bench_check
def test_written_output_ratios():
    pytest.importorskip("torch")
    medians = checked_in_worker("tests.benchmarks.test_xla_conv_output", describe, holds)
    assert holds(medians), medians


if __name__ == "__main__":
    print(json.dumps(measure()))
