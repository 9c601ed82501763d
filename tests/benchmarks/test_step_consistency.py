"""Two figures of the same work must agree: a runner's forward+backward time per step (the
harness's per-step timing, K batches dispatched as its training loop dispatches them) and its
training epoch's time per batch (optimizer step and data included). Both are measured here in one
process, alternately, so that machine drift hits both alike; the ratio is printed and must stay
within the harness's bound (1.3). A per-call figure paying for fresh memory mappings (1.5x, the
defect this guards) or an epoch running a different graph than its timing would break it.

Small shapes (T 32, B 64, 8 batches an epoch) keep it fast; the full-size check is the
``step_consistency`` of every ``snnbench run --suite shd`` record."""

import numpy as np
import pytest

from snnbench.data.staging import SpikeDataset, pack
from snnbench.harness.measure import STEP_CONSISTENCY, steps_per_sample
from snnbench.harness.timing import RepeatPolicy, time_calls
from snnbench.runners import registry

from .conftest import built, conv_case, remeasured, shd_case

pytestmark = pytest.mark.bench_check  # a timing ratio: `make bench-check`, not the test run

# The compiled twins of snnTorch and Norse are held by their full-size run records and by
# test_idiomatic / test_compiled_vs_eager (each of their cold compiles costs a minute here).
RUNNERS = [name for name, cls in registry().items() if "@" not in name and (not cls.eager_twin or name == "torch-compile")]


def _dataset(case, n: int, seed: int) -> SpikeDataset:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n, case.spec.time_steps, case.network.inputs)) < 0.08).astype(np.uint8)
    return SpikeDataset(pack(dense), rng.integers(0, case.network.outputs, n).astype(np.int32), case.spec.time_steps)


@pytest.mark.parametrize("name", RUNNERS)
def test_fwdbwd_per_step_agrees_with_the_epoch_per_batch(name):
    _check_step_consistency(name, shd_case(T=32, B=64))


def test_conv_fwdbwd_per_step_agrees_with_the_epoch_per_batch_on_the_cpu():
    """The reference's conv net: its epoch is one compiled program (a scan over batches) and its per-step
    timing K steps in one scan. When its convolutions were XLA's, they ran 2-3x slower inside a scan (2045
    ms per timed step against 703 ms per batch of a per-batch epoch, N-MNIST quick, 0.35x), and the CPU
    epoch had to step from Python; its patch convolutions run alike in both, which this checks."""
    runner = _check_step_consistency("reference", conv_case(T=8, B=16))
    assert runner._epoch_mode() == "scan"


def _check_step_consistency(name, case):
    if not (expressed := registry()[name]().supports(case)).ok:  # a runner of other networks
        pytest.skip(f"{name} does not express the SHD network: {expressed.reason}")
    runner = built(name, case)
    train = _dataset(case, 8 * case.spec.batch, 0)
    runner.stage(train, _dataset(case, case.spec.batch, 1))
    runner.compile()
    k = steps_per_sample(case)
    xs = np.stack([train.dense(slice(i * case.spec.batch, (i + 1) * case.spec.batch)) for i in range(k)])
    ys = train.labels[: k * case.spec.batch].reshape(k, -1)
    batches = runner.prepare_batches(xs, ys)
    policy = RepeatPolicy(warmup=1, min_repeats=3, min_time_s=0.0)
    runner.train_epoch(0)
    epochs = iter(range(1, 10**6))

    def measure() -> tuple[float, list[float], list[float]]:
        epoch_ms, step_ms = [], []
        for _ in range(5):  # alternated rounds
            epoch = next(epochs)
            epoch_ms += [1e3 * s / len(train.labels) * case.spec.batch
                         for s in time_calls(lambda: runner.train_epoch(epoch), runner.barrier,
                                             RepeatPolicy(warmup=0, min_repeats=1, min_time_s=0.0)).seconds]
            step_ms += [1e3 * s for s in time_calls(lambda: runner.fwdbwd_steps(batches), runner.barrier,
                                                    policy).per(k).seconds]
        ratio = float(np.median(epoch_ms) / np.median(step_ms))
        print(f"\n{name}: epoch {np.median(epoch_ms):.2f} ms per batch, fwd+bwd {np.median(step_ms):.2f} ms per step "
              f"-> {ratio:.2f}x (bound {STEP_CONSISTENCY})")
        return ratio, epoch_ms, step_ms

    ratio, epoch_ms, step_ms = remeasured(measure, lambda r: 1 / STEP_CONSISTENCY <= r[0] <= STEP_CONSISTENCY,
                                          lambda r: f"{r[0]:.2f}x")
    assert 1 / STEP_CONSISTENCY <= ratio <= STEP_CONSISTENCY, (name, epoch_ms, step_ms)
    return runner
