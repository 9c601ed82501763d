"""The recurrent SHD network trained the way Rockpool's JAX tutorials train, beside the snnbench adapter.

As :mod:`.rockpool_jax_shd` (``Sequential`` of ``LinearJax`` / ``LIFJax`` / ``ExpSynJax``, a loss that
``reset_state()``s and ``set_attributes(params)``, ``jax.jit(jax.value_and_grad(loss))`` with
``jax.example_libraries.optimizers.adam``, one compiled step per batch from a Python loop, batches
dense on the device), with the hidden layer Rockpool's recurrent ``LIFJax(has_rec=True)``, its
``w_rec`` ``[from, to]`` trained with the linear weights. The hidden layer is the suite's recurrent
layer as ``cuba_lif`` (synaptic decay 0.9), which ``LIFJax`` computes natively, recurrent input in the
synaptic current included: the adapter's ``1 / alpha`` input scale is folded into the first weight and
into ``w_rec`` here (``1 / beta`` into the readout's). The adapter runs the same modules inside one
compiled epoch over the bit-packed staged split. Compared per epoch on the same data, after checking
equal loss and gradients (``W`` and ``V``) on one batch.

    python -m tests.benchmarks.idiomatic.rockpool_jax_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.example_libraries import optimizers

os.environ["PIP_NO_INDEX"] = "1"  # see snnbench.runners.base.guarded_import
from rockpool.nn.combinators import Sequential  # noqa: E402
from rockpool.nn.modules import ExpSynJax, LIFJax, LinearJax  # noqa: E402

from snnbench.runners import get_runner_class  # noqa: E402
from snnbench.runners.nets.rockpool_jax_net import DT, tau  # noqa: E402
from snnbench.spec import init_weights  # noqa: E402

from .common import alternate, per_epoch_main, random_batch, rel_err, summarize  # noqa: E402
from .rec_common import epoch_data, shd_rec_case  # noqa: E402

ALPHA, BETA = 0.9, 0.9


def tutorial_net(n_in: int, n_hidden: int, n_out: int) -> Sequential:
    rec = LIFJax(n_hidden, tau_mem=tau(BETA), tau_syn=tau(ALPHA), threshold=1.0, dt=DT, max_spikes_per_dt=1.0,
                 has_rec=True)
    return Sequential(LinearJax((n_in, n_hidden), has_bias=False), rec, LinearJax((n_hidden, n_out), has_bias=False),
                      ExpSynJax(n_out, tau=tau(BETA), dt=DT))


def tutorial_params(weights: dict[str, np.ndarray]) -> dict:
    """The tutorial's parameters: each weight divided by the decay of the module it feeds."""
    return {"0_LinearJax": {"weight": jnp.asarray(weights["layers.0.weight"].T / ALPHA)},
            "1_LIFJax": {"w_rec": jnp.asarray(weights["layers.1.recurrent"].T / ALPHA)},
            "2_LinearJax": {"weight": jnp.asarray(weights["layers.2.weight"].T / BETA)}}


def loss_fn(params, net, x, y):
    net = net.reset_state()
    net = net.set_attributes(params)
    out, _, _ = net(x)
    return optax.softmax_cross_entropy_with_integer_labels(out.mean(1), y).mean()


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 1,
            batches: int = 16) -> dict[str, float]:
    """Seconds per batch of an epoch of ``batches`` batches, adapter and tutorial loop alternately."""
    case = shd_rec_case(time_steps, batch, neuron="cuba_lif", alpha=ALPHA)
    weights = init_weights(case.network, 0)
    train, test, dense, labels, order = epoch_data(case, batches)
    adapter = get_runner_class("rockpool-jax")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    adapter.stage(train, test)
    adapter.compile()

    net = tutorial_net(case.network.inputs, case.network.sizes()[0], 20)
    # closes over the network, as rockpool_jax_shd does (there LinearJax loses its bias in a pytree round trip)
    loss_vgf = jax.jit(jax.value_and_grad(lambda params, x, y: loss_fn(params, net, x, y)))
    opt_init, opt_update, get_params = optimizers.adam(case.spec.lr)
    opt_state = opt_init(tutorial_params(weights))

    @jax.jit
    def update(i, opt_state, x, y):
        loss, grads = loss_vgf(get_params(opt_state), x, y)
        return opt_update(i, grads, opt_state), loss

    x, y = random_batch(case)
    got = adapter.forward_backward(x, y)
    loss, grads = loss_vgf(tutorial_params(weights), jnp.asarray(x), jnp.asarray(y, jnp.int32))
    # a weight divided by d has d times the canonical gradient
    pairs = (("0_LinearJax", "weight", "layers.0.weight", ALPHA), ("1_LIFJax", "w_rec", "layers.1.recurrent", ALPHA),
             ("2_LinearJax", "weight", "layers.2.weight", BETA))
    grad_err = max(rel_err(np.asarray(grads[m][p]).T / d, got.grads[k]) for m, p, k, d in pairs)

    device_batches = [(jax.device_put(dense[idx]), jax.device_put(labels[idx])) for idx in order]
    epoch, state = iter(range(1, 10**6)), {"opt": opt_state, "i": 0}

    def adapter_epoch():
        return adapter.train_epoch(next(epoch)).loss  # ends with a device_get: synchronised

    def own_epoch():
        loss = None
        for xb, yb in device_batches:
            state["opt"], loss = update(state["i"], state["opt"], xb, yb)
            state["i"] += 1
        return jax.block_until_ready(loss)

    times = alternate({"adapter": adapter_epoch, "own": own_epoch}, rounds, steps)
    per_batch = {k: [t / batches for t in v] for k, v in times.items()}
    return {**summarize(per_batch), "loss_rel_err": rel_err(float(loss), got.loss), "grad_rel_err": grad_err}


def main(argv: list[str] | None = None) -> int:
    return per_epoch_main(__doc__, compare, "rockpool-jax adapter, epoch / batches", "Rockpool's own loop, epoch / batches", argv)


if __name__ == "__main__":
    raise SystemExit(main())
