"""The reference runner's own speed: compiled forward, forward+backward, a whole epoch, staging."""

import numpy as np
import pytest

from snnbench.data.staging import SpikeDataset, pack, unpack

from .conftest import built, conv_case, layer_case, shd_case, spike_batch, spike_batches

pytest.importorskip("haiku")


@pytest.fixture(scope="module")
def reference():
    case = shd_case()
    r = built("reference", case)
    batch = r.prepare_batch(*spike_batch(case))
    r.barrier(r.fwdbwd_step(batch))  # compile outside the timed function
    r.barrier(r.fwd_step(batch))
    return r, batch


def test_reference_forward(benchmark, reference):
    r, batch = reference
    benchmark(lambda: r.barrier(r.fwd_step(batch)))


def test_reference_forward_backward(benchmark, reference):
    r, batch = reference
    benchmark(lambda: r.barrier(r.fwdbwd_step(batch)))


def test_reference_forward_backward_4_steps(benchmark, reference):
    """Four distinct batches in one compiled program: the harness's per-step figure (times 4)."""
    r, _ = reference
    batches = r.prepare_batches(*spike_batches(r.case, 4))
    r.barrier(r.fwdbwd_steps(batches))
    benchmark(lambda: r.barrier(r.fwdbwd_steps(batches)))


def test_reference_training_epoch(benchmark):
    case = shd_case(epochs=1)
    rng = np.random.default_rng(0)
    dense = (rng.random((256, case.spec.time_steps, case.network.inputs)) < 0.08).astype(np.uint8)
    data = SpikeDataset(pack(dense), rng.integers(0, 20, 256).astype(np.int32), case.spec.time_steps)
    r = built("reference", case)
    r.stage(data, data)
    r.compile()
    epoch = iter(range(10**6))
    benchmark(lambda: r.train_epoch(next(epoch)))  # train_epoch reads its results back: the barrier


def test_layer_workload_forward_backward(benchmark):
    case = layer_case()
    r = built("reference", case)
    batch = r.prepare_batch(*spike_batch(case))
    r.barrier(r.fwdbwd_step(batch))
    benchmark(lambda: r.barrier(r.fwdbwd_step(batch)))


def test_conv_net_forward_backward(benchmark):
    """The N-MNIST conv net (convolutions, pooling with first-maximum gradients, two LIF layers)."""
    case = conv_case()
    r = built("reference", case)
    batch = r.prepare_batch(*spike_batch(case))
    r.barrier(r.fwdbwd_step(batch))
    benchmark(lambda: r.barrier(r.fwdbwd_step(batch)))


def test_packbits_staging(benchmark):
    dense = (np.random.default_rng(0).random((512, 128, 128)) < 0.08).astype(np.uint8)
    packed = benchmark(pack, dense)
    assert packed.nbytes * 8 == dense.size


def test_unpack_on_device(benchmark):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    packed = jnp.asarray(pack((np.random.default_rng(0).random((128, 128, 128)) < 0.08).astype(np.uint8)))
    f = jax.jit(lambda p: jnp.unpackbits(p, axis=1).astype(jnp.float32))
    f(packed).block_until_ready()
    out = benchmark(lambda: f(packed).block_until_ready())
    np.testing.assert_array_equal(np.asarray(out), unpack(np.asarray(packed)))
