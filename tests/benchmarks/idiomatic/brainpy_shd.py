"""The SHD network trained the way BrainPy's own SNN-training tutorial trains, beside the snnbench adapter.

BrainPy's tutorial (``brainpy.state`` / brainstate) writes the network as a ``brainstate.nn.Module``
whose ``update`` takes one time step (``brainstate.nn.Linear``, ``brainpy.state.LIF``, an exponential
synapse as the readout), steps it with ``brainstate.transform.for_loop``, initialises its states per
batch with ``brainstate.nn.init_all_states``, takes gradients with ``brainstate.transform.grad`` over
the module's ``ParamState``s, updates them with a ``braintools.optim`` optimizer, and compiles the
step with ``brainstate.transform.jit``, called from a Python loop over batches. Here the batches
are dense float32 arrays already on the device (the tutorial's data path at its best).

The adapter instead runs a whole epoch as one compiled program over the bit-packed staged split.
This script compares the two per epoch on the same data: equal loss and gradients on one batch
first, then epochs of each, alternately, in one process.

    python -m tests.benchmarks.idiomatic.brainpy_shd [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import math

import brainstate
import braintools
import jax
import jax.numpy as jnp
import numpy as np
from brainpy import state as bp_state

from snnbench.data.staging import SpikeDataset, epoch_batches, pack
from snnbench.runners import get_runner_class
from snnbench.runners.nets.brainpy_net import CanonicalSurrogate, lif_constants
from snnbench.spec import init_weights

from .common import alternate, per_epoch_main, random_batch, rel_err, shd_case, summarize


class TutorialSNN(brainstate.nn.Module):
    """Input -> Linear -> LIF -> Linear -> LIF -> Linear -> exponential readout, one step per call."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, beta: float, threshold: float):
        super().__init__()
        lif = lif_constants(beta, threshold, "subtract")
        spike = CanonicalSurrogate("superspike", 1.0, lif["V_th"] - lif["V_reset"])
        self.i2h = brainstate.nn.Linear(n_in, n_hidden)
        self.h1 = bp_state.LIF(n_hidden, **lif, V_initializer=braintools.init.Constant(0.0), spk_fun=spike)
        self.h2h = brainstate.nn.Linear(n_hidden, n_hidden)
        self.h2 = bp_state.LIF(n_hidden, **lif, V_initializer=braintools.init.Constant(0.0), spk_fun=spike)
        self.h2o = brainstate.nn.Linear(n_hidden, n_out)
        self.out = bp_state.Expon(n_out, tau=-1.0 / math.log(beta), g_initializer=braintools.init.Constant(0.0))

    def update(self, x):
        return self.out(self.h2o(self.h2(self.h2h(self.h1(self.i2h(x))))))


def load(net: TutorialSNN, weights: dict[str, np.ndarray]) -> None:
    for i, layer in ((0, net.i2h), (2, net.h2h), (4, net.h2o)):
        layer.weight.value = {"weight": jnp.asarray(weights[f"layers.{i}.weight"].T),
                              "bias": jnp.asarray(weights[f"layers.{i}.bias"])}


def make_own_step(net: TutorialSNN, lr: float):
    params = net.states(brainstate.ParamState)
    optimizer = braintools.optim.Adam(lr=lr)
    optimizer.register_trainable_weights(params)

    def loss_fn(x, y):
        brainstate.nn.init_all_states(net, batch_size=x.shape[1])
        logits = brainstate.transform.for_loop(net.update, x).mean(0)
        return braintools.metric.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @brainstate.transform.jit
    def train_step(x, y):
        grads, loss = brainstate.transform.grad(loss_fn, params, return_value=True)(x, y)
        optimizer.update(grads)
        return loss

    grad_fn = brainstate.transform.jit(lambda x, y: brainstate.transform.grad(loss_fn, params, return_value=True)(x, y))
    return train_step, grad_fn, params


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 1,
            batches: int = 16) -> dict[str, float]:
    """Seconds per batch of an epoch of ``batches`` batches (``steps`` epochs per timed sample)."""
    brainstate.environ.set(dt=1.0)
    case = shd_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    rng = np.random.default_rng(1)
    n = batches * batch
    dense = (rng.random((n, time_steps, case.network.inputs)) < 0.1).astype(np.float32)
    labels = rng.integers(0, 20, n).astype(np.int32)
    train = SpikeDataset(pack(dense), labels, time_steps)
    test = SpikeDataset(pack(dense[:batch]), labels[:batch], time_steps)

    adapter = get_runner_class("brainpy")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    adapter.stage(train, test)
    adapter.compile()

    net = TutorialSNN(case.network.inputs, 128, 20, 0.9, 1.0)
    load(net, weights)
    train_step, grad_fn, params = make_own_step(net, case.spec.lr)

    x, y = random_batch(case)
    got = adapter.forward_backward(x, y)
    grads, loss = grad_fn(jnp.asarray(np.swapaxes(x, 0, 1)), jnp.asarray(y, jnp.int32))
    grad_err = max(rel_err(np.asarray(grads[path]["weight"]).T, got.grads[f"layers.{i}.weight"])
                   for i, path in ((0, ("i2h", "weight")), (2, ("h2h", "weight")), (4, ("h2o", "weight"))))

    # the tutorial's data path at its best: dense [T, B, C] batches already on the device
    order = epoch_batches(0, 0, n, batch)
    device_batches = [(jax.device_put(np.ascontiguousarray(np.swapaxes(dense[idx], 0, 1))), jax.device_put(labels[idx]))
                      for idx in order]
    epoch = iter(range(1, 10**6))

    def adapter_epoch():
        return adapter.train_epoch(next(epoch)).loss  # ends with a device_get: synchronised

    def own_epoch():
        loss = None
        for xb, yb in device_batches:
            loss = train_step(xb, yb)
        return jax.block_until_ready(loss)

    times = alternate({"adapter": adapter_epoch, "own": own_epoch}, rounds, steps)
    per_batch = {k: [t / batches for t in v] for k, v in times.items()}
    return {**summarize(per_batch), "loss_rel_err": rel_err(float(loss), got.loss), "grad_rel_err": grad_err}


def main(argv: list[str] | None = None) -> int:
    return per_epoch_main(__doc__, compare, "brainpy adapter, epoch / batches", "BrainPy's own loop, epoch / batches", argv)


if __name__ == "__main__":
    raise SystemExit(main())
