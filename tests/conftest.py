import os
from pathlib import Path

import pytest

# Keep every test's caches and generated data inside pytest's temp area, never in ~/.cache.
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "snnbench-cache"
    monkeypatch.setenv("SNNBENCH_CACHE", str(cache))
    monkeypatch.delenv("SNNBENCH_DATA_DIR", raising=False)
    # No test downloads a dataset unless it says so (tests/test_fetch.py serves its own on loopback).
    monkeypatch.setenv("SNNBENCH_OFFLINE", "1")
    monkeypatch.delenv("SNNBENCH_DATA_MIRROR", raising=False)
    yield


@pytest.fixture(scope="session")
def small_shd(tmp_path_factory) -> Path:
    """A small synthetic SHD in the real file format: 256 train / 128 test samples."""
    from snnbench.data.synthetic_shd import write_synthetic_shd

    root = tmp_path_factory.mktemp("shd-data")
    return write_synthetic_shd(root, n_train=256, n_test=128, seed=3)


@pytest.fixture(scope="session")
def small_nmnist(tmp_path_factory) -> Path:
    """A small synthetic N-MNIST in the real binary format: 200 train / 100 test samples."""
    from snnbench.data.synthetic_nmnist import write_synthetic_nmnist

    root = tmp_path_factory.mktemp("nmnist-data")
    return write_synthetic_nmnist(root, n_train=200, n_test=100, seed=5, workers=1)


def conv_network_yaml(m: int = 1, learn_beta: bool = False) -> dict:
    """The N-MNIST suite's network with channel multiplier ``m``."""
    return {
        "neuron": {"beta": 0.9, "threshold": 1.0, "learn_beta": learn_beta},
        "surrogate": {"name": "superspike", "slope": 1.0},
        "layers": [
            {"type": "conv2d", "out": 12 * m, "kernel": 5},
            {"type": "lif"},
            {"type": "maxpool", "kernel": 2},
            {"type": "conv2d", "out": 32 * m, "kernel": 5},
            {"type": "lif"},
            {"type": "maxpool", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 10},
            {"type": "li"},
        ],
    }


def tiny_network_yaml(reset: str = "subtract", surrogate: str = "arctan") -> dict:
    return {
        "neuron": {"beta": 0.9, "threshold": 1.0, "reset": reset},
        "surrogate": {"name": surrogate, "slope": 2.0},
        "layers": [
            {"type": "linear", "out": 32},
            {"type": "lif"},
            {"type": "linear", "out": 20},
            {"type": "li"},
        ],
    }


def assert_spyx_is_the_reference_delayed(case, batch: int) -> None:
    """Spyx's declared deviation is the whole difference: with zero biases (a bias would enter once
    more than canonical, at the step the delayed spike is still 0), its network is the reference
    delayed by one step per spiking layer."""
    import numpy as np

    from snnbench.harness import parity
    from snnbench.runners import get_runner_class
    from snnbench.spec import init_weights

    res = parity.compare(case, "spyx", batch=batch)
    assert res["status"] == "deviates" and "one step late" in res["reason"]
    x, _ = parity.parity_input(case, batch, 0)
    w = {k: (np.zeros_like(v) if k.endswith("bias") else v * 2) for k, v in init_weights(case.network, 0).items()}
    ref, spyx = get_runner_class("reference")(), get_runner_class("spyx")()
    for r in (ref, spyx):
        r.build(case, "cpu", 0)
        r.set_weights(w)
    a, b = ref.forward(x), spyx.forward(x)
    assert a.spikes[1].sum() > 0
    np.testing.assert_array_equal(b.spikes[0][:, 1:], a.spikes[0][:, :-1])  # first layer: one step late
    np.testing.assert_array_equal(b.spikes[1][:, 2:], a.spikes[1][:, :-2])  # second layer: two steps late
    np.testing.assert_allclose(b.readout[:, 2:], a.readout[:, :-2], rtol=1e-4, atol=1e-5)


def built(name: str, case):
    """The registered runner ``name`` built on ``case`` on the CPU with the canonical initial weights;
    the test skips with the runner's reason when its framework is missing."""
    from snnbench.runners import get_runner_class
    from snnbench.spec import init_weights

    cls = get_runner_class(name)
    ok = cls.available()
    if not ok.ok:
        pytest.skip(ok.reason)
    runner = cls()
    runner.build(case, "cpu", 0)
    runner.set_weights(init_weights(case.network, 0))
    return runner
