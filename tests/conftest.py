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
