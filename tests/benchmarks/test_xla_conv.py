"""The one op that keeps the reference behind PyTorch on N-MNIST: a 2-D convolution with the gradients
its training step takes (the weight gradient; the input gradient too after the first layer, whose input
is data), at the nmnist suite's shapes (``T * B = 1024`` frames, the publish profile's ``T = 32``,
``B = 32``; both networks, m1 and m2), in XLA:CPU, in the reference's patch-and-GEMM form
(:mod:`snnbench.runners.reference.conv`) and in PyTorch (oneDNN). ``docs/reference-performance.md`` has
the figures and the whole step's profile.

The pytest-benchmark functions time each form alone (``make bench``). ``test_conv_ratios`` (a
``bench_check``: ``make bench-check``) times them alternately in one process, prints every ratio and
each network's total, and checks the two claims the docs make: XLA's own convolution is at least twice
PyTorch's, and the reference's form is faster than XLA's own. When a JAX release fixes its convolution,
the first check fails and says the docs are out of date."""

from __future__ import annotations

import numpy as np
import pytest

from snnbench.harness.timing import RepeatPolicy, time_calls

from .conftest import remeasured

pytest.importorskip("jax")

FRAMES = 1024  # T * B of nmnist-m1-B32 in the publish profile
LAYERS = {  # each network's two convolutions: (in channels, side, out channels), kernel 5
    "m1-conv1": (2, 34, 12),
    "m1-conv2": (12, 15, 32),
    "m2-conv1": (2, 34, 24),
    "m2-conv2": (24, 15, 64),
}
FIRST = ("m1-conv1", "m2-conv1")  # their input is the data: no input gradient
XLA_OVER_TORCH_AT_LEAST = 2.0  # measured 4-8x here (docs/reference-performance.md)


def _arrays(layer: str):
    c, side, o = LAYERS[layer]
    rng = np.random.default_rng(0)
    x = (rng.random((FRAMES, c, side, side)) < 0.1).astype(np.float32)  # spikes, as the layer sees them
    w = (rng.normal(size=(o, c, 5, 5)) * 0.1).astype(np.float32)
    g = rng.normal(size=(FRAMES, o, side - 4, side - 4)).astype(np.float32)
    return x, w, g


def _forward_and_grads(conv, x, w, g, input_grad: bool):
    """``conv(x, w)`` and its gradients for the cotangent ``g`` (the weight's; the input's too when
    ``input_grad``), all returned, so none is dropped."""
    import jax

    if input_grad:
        y, vjp = jax.vjp(conv, x, w)
        return y, *vjp(g)
    y, vjp = jax.vjp(lambda w: conv(x, w), w)
    return y, vjp(g)[0]


def xla_step(layer: str):
    """XLA's own convolution (``lax.conv_general_dilated``, NCHW as PyTorch): output and weight gradient."""
    import jax

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))

    args = [jax.numpy.asarray(a) for a in _arrays(layer)]  # arguments, not constants XLA could fold
    f = jax.jit(lambda x, w, g: _forward_and_grads(conv, x, w, g, layer not in FIRST))
    return lambda: jax.block_until_ready(f(*args))


def patch_step(layer: str):
    """The reference's convolution (patches and GEMMs over cache-sized chunks, channels-last)."""
    import jax

    from snnbench.runners.reference.conv import conv2d

    x, w, g = _arrays(layer)
    args = [jax.numpy.asarray(a) for a in (x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), g.transpose(0, 2, 3, 1))]
    f = jax.jit(lambda x, w, g: _forward_and_grads(conv2d, x, w, g, layer not in FIRST))
    return lambda: jax.block_until_ready(f(*args))


def torch_step(layer: str):
    """PyTorch's ``conv2d`` forward and gradients (its oneDNN kernels on a CPU)."""
    torch = pytest.importorskip("torch")
    x, w, g = (torch.tensor(a) for a in _arrays(layer))
    w.requires_grad_(True)
    x.requires_grad_(layer not in FIRST)
    wrt = (x, w) if layer not in FIRST else (w,)

    def step():
        y = torch.nn.functional.conv2d(x, w)
        return y, *torch.autograd.grad(y, wrt, g)

    return step


FORMS = {"xla": xla_step, "patches": patch_step, "torch": torch_step}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("form", FORMS)
def test_conv_forward_and_gradients(benchmark, form, layer):
    step = FORMS[form](layer)
    step()  # compile outside the timed function
    benchmark(step)


@pytest.mark.bench_check
def test_conv_ratios():
    steps = {(form, layer): FORMS[form](layer) for form in FORMS for layer in LAYERS}
    for step in steps.values():
        step()
    policy = RepeatPolicy(warmup=1, min_repeats=3, min_time_s=0.0)

    def measure() -> dict[tuple[str, str], float]:
        ms: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
        for _ in range(3):  # alternated rounds
            for key, step in steps.items():
                ms[key] += [1e3 * s for s in time_calls(step, lambda _: None, policy).seconds]
        medians = {key: float(np.median(v)) for key, v in ms.items()}
        for layer in LAYERS:
            xla, patches, torch = (medians[(form, layer)] for form in FORMS)
            grads = "weight gradient" if layer in FIRST else "both gradients"
            print(f"\n{layer} forward + {grads}, {FRAMES} frames: XLA {xla:.1f} ms, patches {patches:.1f} "
                  f"ms, torch {torch:.1f} ms -> XLA / torch {xla / torch:.2f}x, patches / torch "
                  f"{patches / torch:.2f}x, patches / XLA {patches / xla:.2f}x")
        for net in ("m1", "m2"):
            xla, patches, torch = (sum(medians[(form, layer)] for layer in LAYERS if layer.startswith(net))
                                   for form in FORMS)
            print(f"\n{net} network's convolutions: XLA {xla:.1f} ms, patches {patches:.1f} ms, torch {torch:.1f} ms "
                  f"-> patches - torch {patches - torch:+.1f} ms per step, patches / torch {patches / torch:.2f}x")
        return medians

    def holds(medians) -> bool:
        return all(medians[("xla", layer)] >= XLA_OVER_TORCH_AT_LEAST * medians[("torch", layer)]
                   and medians[("patches", layer)] < medians[("xla", layer)] for layer in LAYERS)

    medians = remeasured(measure, holds, lambda m: repr({"/".join(k): round(v, 1) for k, v in m.items()}))
    assert holds(medians), medians
