"""Adapters against their framework's own idiomatic training loop, timed alternately in one
process: an adapter slower than the framework's own code would make the framework look worse than
it is. Prints both figures; fails when the adapter's training step is more than 10% slower.

Full size: ``python -m tests.benchmarks.idiomatic.norse_shd`` (T 128, B 128)."""

import pytest

pytest.importorskip("norse")

BOUND = 1.10


def test_norse_adapter_is_no_slower_than_norses_own_loop():
    from .idiomatic.norse_shd import compare

    r = compare(time_steps=64, batch=64, rounds=5, steps=2)
    print(f"\nnorse, T 64, B 64: adapter {r['adapter_ms']:.2f} ms, Norse's own loop {r['norse_ms']:.2f} ms per "
          f"training step -> {r['ratio']:.3f}x (bound {BOUND})")
    assert r["loss_rel_err"] <= 1e-6 and r["grad_rel_err"] <= 1e-5  # the same network
    assert r["ratio"] <= BOUND, r
