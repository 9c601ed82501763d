"""The recurrent SHD network (``shd-rec-h128``) trained the way BrainPy's own SNN-training tutorial
trains its recurrent network, beside the snnbench adapter.

BrainPy's tutorial (``brainpy.state`` / brainstate) makes a population recurrent with a projection fed
the concatenation of the input and the population's own spikes, ``proj(concat([x, r.get_spike()]))``,
then steps the population (``r()``) and reads out its spikes: one ``brainstate.nn.Linear(n_in + n, n)``
holds the input and the recurrent weights together. Its tutorial filters that current through an
exponential synapse (``AlignPostProj`` + ``Expon``); the suite's layer has none, so the projection here
is ``CurrentProj`` with a ``CUBA`` output, which adds the current straight into the LIF's update (the
adapter's choice too, with separate input and recurrent weights). The rest is the tutorial's: steps
by ``brainstate.transform.for_loop``, states initialised per batch, gradients by
``brainstate.transform.grad`` over the ``ParamState``s, ``braintools.optim.Adam``, a
``brainstate.transform.jit`` step per batch from a Python loop, batches dense on the device. Compared
per epoch on the same data, after checking equal loss and gradients (``W`` and ``V``) on one batch.

    python -m tests.benchmarks.idiomatic.brainpy_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import math

import brainstate
import braintools
import jax
import jax.numpy as jnp
import numpy as np
from brainpy import state as bp_state

from snnbench.runners import get_runner_class
from snnbench.runners.nets.brainpy_net import CanonicalSurrogate, lif_constants
from snnbench.spec import init_weights

from .common import alternate, per_epoch_main, random_batch, rel_err, summarize
from .rec_common import epoch_data, shd_rec_case


class TutorialRSNN(brainstate.nn.Module):
    """Input and own spikes -> one Linear -> LIF -> Linear -> exponential readout, one step per call."""

    def __init__(self, n_in: int, n_rec: int, n_out: int, beta: float, threshold: float):
        super().__init__()
        lif = lif_constants(beta, threshold, "subtract")
        spike = CanonicalSurrogate("superspike", 1.0, lif["V_th"] - lif["V_reset"])
        self.r = bp_state.LIF(n_rec, **lif, V_initializer=braintools.init.Constant(0.0), spk_fun=spike)
        self.syn = bp_state.CurrentProj(comm=brainstate.nn.Linear(n_in + n_rec, n_rec, b_init=None),
                                        out=bp_state.CUBA(scale=1.0), post=self.r)
        self.h2o = brainstate.nn.Linear(n_rec, n_out, b_init=None)
        self.out = bp_state.Expon(n_out, tau=-1.0 / math.log(beta), g_initializer=braintools.init.Constant(0.0))

    def update(self, x):
        self.syn(jnp.concatenate([x, self.r.get_spike()], axis=-1))
        return self.out(self.h2o(self.r(0.0)))


def load(net: TutorialRSNN, weights: dict[str, np.ndarray]) -> None:
    w_in = np.concatenate([weights["layers.0.weight"].T, weights["layers.1.recurrent"].T], axis=0)
    net.syn.comm.weight.value = {"weight": jnp.asarray(w_in)}
    net.h2o.weight.value = {"weight": jnp.asarray(weights["layers.2.weight"].T)}


def make_own_step(net: TutorialRSNN, lr: float):
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
    return train_step, grad_fn


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 1,
            batches: int = 16) -> dict[str, float]:
    """Seconds per batch of an epoch of ``batches`` batches (``steps`` epochs per timed sample)."""
    brainstate.environ.set(dt=1.0)
    case = shd_rec_case(time_steps, batch, detach_reset=False)
    weights = init_weights(case.network, 0)
    train, test, dense, labels, order = epoch_data(case, batches)
    adapter = get_runner_class("brainpy")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    adapter.stage(train, test)
    adapter.compile()

    n_in, n = case.network.inputs, case.network.sizes()[0]
    net = TutorialRSNN(n_in, n, 20, 0.9, 1.0)
    load(net, weights)
    train_step, grad_fn = make_own_step(net, case.spec.lr)

    x, y = random_batch(case)
    got = adapter.forward_backward(x, y)
    grads, loss = grad_fn(jnp.asarray(np.swapaxes(x, 0, 1)), jnp.asarray(y, jnp.int32))
    w_in = np.asarray(grads[("syn", "comm", "weight")]["weight"])
    mine = {"layers.0.weight": w_in[:n_in].T, "layers.1.recurrent": w_in[n_in:].T,
            "layers.2.weight": np.asarray(grads[("h2o", "weight")]["weight"]).T}
    grad_err = max(rel_err(g, got.grads[k]) for k, g in mine.items())

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
