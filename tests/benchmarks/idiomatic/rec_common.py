"""What the recurrent idiomatic-loop comparisons share: the ``shd`` suite's recurrent case
(``shd-rec-h128``: one recurrent hidden LIF layer, LI readout) and an epoch of random data staged for
the per-epoch (JAX) comparisons. The timing and checking helpers are :mod:`.common`'s."""

from __future__ import annotations

import numpy as np

from snnbench.data.staging import SpikeDataset, epoch_batches, pack
from snnbench.spec import parse_suite


def shd_rec_case(time_steps: int = 128, batch: int = 128, hidden: int = 128, channels: int = 128,
                 neuron: str = "lif", **neuron_fields):
    """``shd-rec-h128``'s network: linear (no bias) -> recurrent ``neuron`` (``V [hidden, hidden]``) ->
    linear (no bias) -> li, SuperSpike slope 1, detached subtract reset unless ``neuron_fields`` say
    otherwise (:func:`.common.shd_rec_case` with the hidden neuron's type free, e.g. ``cuba_lif``)."""
    net = {"neuron": {"beta": 0.9, "threshold": 1.0, **neuron_fields},
           "surrogate": {"name": "superspike", "slope": 1.0},
           "layers": [{"type": "linear", "out": hidden, "bias": False}, {"type": neuron, "recurrent": True},
                      {"type": "linear", "out": 20, "bias": False}, {"type": "li"}]}
    return parse_suite({"suite": "idiomatic-rec", "defaults": {"time_steps": time_steps, "batch": batch,
                                                                "channels": channels, "lr": 2e-3},
                        "network": net, "cases": [{"id": "shd-rec"}]}, "idiomatic-rec.yaml").cases[0]


def epoch_data(case, batches: int, seed: int = 1):
    """``(train, test, dense [N, T, C], labels [N], order)``: ``batches`` batches of Bernoulli spikes
    staged for an adapter, the same samples dense for a framework's own loop, and the batch order the
    adapter's first epoch uses."""
    rng = np.random.default_rng(seed)
    s = case.spec
    n = batches * s.batch
    dense = (rng.random((n, s.time_steps, case.network.inputs)) < 0.1).astype(np.float32)
    labels = rng.integers(0, 20, n).astype(np.int32)
    train = SpikeDataset(pack(dense), labels, s.time_steps)
    test = SpikeDataset(pack(dense[: s.batch]), labels[: s.batch], s.time_steps)
    return train, test, dense, labels, epoch_batches(0, 0, n, s.batch)
