"""Adapters against their framework's own idiomatic training loop, timed alternately in one
process: an adapter slower than the framework's own code would make the framework look worse than
it is. Each check first requires the two to compute the same network (equal loss and gradients on
one batch), prints both figures, and fails when the adapter's training step is more than 10% slower.

Full size (T 128, B 128): ``python -m tests.benchmarks.idiomatic.<framework>_shd`` for norse,
snntorch, spikingjelly, sinabs, rockpool, rockpool_jax, brainpy; ``--compile`` for norse-compile and
snntorch-compile. The JAX frameworks (brainpy, rockpool-jax) are compared per epoch (their adapters
compile a whole epoch; the frameworks' own loops call a compiled step per batch)."""

import importlib

import pytest

BOUND = 1.10

# (script module, package it needs, compiled?, T, B): eager checks at T 64, compiled ones at T 32
# (inductor unrolls the time loop: its compile time grows with T).
CHECKS = [
    ("norse_shd", "norse", False, 64, 64),
    ("snntorch_shd", "snntorch", False, 64, 64),
    ("spikingjelly_shd", "spikingjelly", False, 64, 64),
    ("sinabs_shd", "sinabs", False, 64, 64),
    ("rockpool_shd", "rockpool", False, 64, 64),
    # brainpy at the suite's own size: at T 64 B 64 the two loops are level (adapter / own 0.99-1.14 over six
    # runs, medians of alternated epochs of 16 batches), too close to the bound for a shared CI machine
    ("brainpy_shd", "brainpy", False, 128, 128),
    ("rockpool_jax_shd", "rockpool", False, 64, 64),
    ("snntorch_shd", "snntorch", True, 32, 32),
    ("norse_shd", "norse", True, 32, 32),
]

#: how far "the same network" may differ (loss, weight gradients; relative): rounding only, except where
#: the framework's own network folds an input scale into its weights (Rockpool's LIFJax decays its
#: input, so the tutorial net carries 1/alpha in the weights where the adapter scales the current):
#: membrane inputs then round differently and a few of ~1M neuron-steps flip at the threshold
#: (measured: loss 5e-5, gradients 1e-3). A real difference is far outside (a dropped bias: loss 17%).
SAME = {"rockpool_jax_shd": (1e-4, 1e-2)}


@pytest.mark.parametrize("script, package, compiled, T, B", CHECKS,
                         ids=[c[0].replace("_shd", "").replace("_", "-") + ("-compile" if c[2] else "") for c in CHECKS])
def test_adapter_is_no_slower_than_the_frameworks_own_loop(script, package, compiled, T, B):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    module = importlib.import_module(f"tests.benchmarks.idiomatic.{script}")
    kwargs = {"compiled": True} if compiled else {}
    # Longer samples (more steps each) keep timer and scheduler noise out: compiled steps are ~5 ms here, and
    # snnTorch's eager adapter sits ~5% above its tutorial loop, where 5 x 2 steps once read 1.10+ in CI.
    # The JAX checks time whole epochs of 16 batches per step: 5 x 2 is already seconds per sample.
    per_epoch = script in ("brainpy_shd", "rockpool_jax_shd")
    rounds, steps = (5, 2) if per_epoch else (7, 6) if compiled else (7, 4)
    r = module.compare(time_steps=T, batch=B, rounds=rounds, steps=steps, **kwargs)
    own = r.get("own_ms", r.get("norse_ms"))
    name = script.replace("_shd", "").replace("_", "-") + ("-compile" if compiled else "")
    print(f"\n{name}, T {T}, B {B}: adapter {r['adapter_ms']:.2f} ms, the framework's own loop {own:.2f} ms per "
          f"training step -> {r['ratio']:.3f}x (bound {BOUND})")
    loss_tol, grad_tol = SAME.get(script, (1e-6, 1e-5))
    assert r["loss_rel_err"] <= loss_tol and r["grad_rel_err"] <= grad_tol  # the same network
    assert r["ratio"] <= BOUND, r
