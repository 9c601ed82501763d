"""Each installed adapter's forward+backward on the same small SHD-shaped batch."""

import pytest

from .conftest import built, shd_case, spike_batch


@pytest.mark.parametrize("name", ["snntorch", "norse", "torch", "spyx"])
def test_adapter_forward_backward(benchmark, name):
    case = shd_case(T=32)
    r = built(name, case)
    batch = r.prepare_batch(*spike_batch(case))
    r.barrier(r.fwdbwd_step(batch))
    benchmark(lambda: r.barrier(r.fwdbwd_step(batch)))
