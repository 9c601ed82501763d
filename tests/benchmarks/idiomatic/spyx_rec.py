"""The recurrent SHD network (``shd-rec-h128``) trained the way Spyx 1.0 (Flax NNX) trains, beside the
snnbench adapter.

A Spyx user writes the network as ``spyx.nn.Sequential`` of ``flax.nnx.Linear`` and Spyx neurons (here
its recurrent ``spyx.nn.RLIF`` and an ``LI`` readout), runs it over time-major ``[T, B, C]`` input with
``spyx.nn.run``, takes the readout's time mean into ``optax``'s cross-entropy, and trains with
``flax.nnx.Optimizer`` (``optax.adam``) in an ``nnx.jit``-compiled step, called per batch from a Python
loop, batches dense on the device. Spyx makes ``beta`` a trainable parameter, and this loop trains it
as a Spyx user would (the adapter masks its gradient, since the spec fixes it: an extra element-wise
update per step here). The adapter runs the same modules inside one compiled epoch over the bit-packed
staged split. Compared per epoch on the same data, after checking equal loss and gradients (``W`` and
``V``) on one batch.

    python -m tests.benchmarks.idiomatic.spyx_rec [--time-steps 128] [--batch 128] [--rounds 5]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import spyx
from flax import nnx

from snnbench.runners import get_runner_class
from snnbench.spec import init_weights

from .common import alternate, per_epoch_main, random_batch, rel_err, summarize
from .rec_common import epoch_data, shd_rec_case


def spyx_model(n_in: int, n_rec: int, n_out: int, beta: float, threshold: float):
    rngs = nnx.Rngs(0)
    return spyx.nn.Sequential(nnx.Linear(n_in, n_rec, use_bias=False, rngs=rngs),
                              spyx.nn.RLIF((n_rec,), beta=beta, threshold=threshold,
                                           activation=spyx.axn.superspike(k=1.0), rngs=rngs),
                              nnx.Linear(n_rec, n_out, use_bias=False, rngs=rngs),
                              spyx.nn.LI((n_out,), beta=beta, rngs=rngs))


def load(model, weights: dict[str, np.ndarray]) -> None:
    for i in (0, 2):
        model.layers[i].kernel[...] = jnp.asarray(weights[f"layers.{i}.weight"].T)
    model.layers[1].recurrent_w[...] = jnp.asarray(weights["layers.1.recurrent"].T)  # [from, to]


def loss_fn(model, x, y):
    readout, _ = spyx.nn.run(model, x)
    return optax.softmax_cross_entropy_with_integer_labels(readout.mean(0), y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


def compare(time_steps: int = 128, batch: int = 128, rounds: int = 5, steps: int = 1,
            batches: int = 16) -> dict[str, float]:
    """Seconds per batch of an epoch of ``batches`` batches (``steps`` epochs per timed sample)."""
    case = shd_rec_case(time_steps, batch)
    weights = init_weights(case.network, 0)
    train, test, dense, labels, order = epoch_data(case, batches)
    adapter = get_runner_class("spyx")()
    adapter.build(case, "cpu", 0)
    adapter.set_weights(weights)
    adapter.stage(train, test)
    adapter.compile()

    model = spyx_model(case.network.inputs, case.network.sizes()[0], 20, 0.9, 1.0)
    load(model, weights)
    optimizer = nnx.Optimizer(model, optax.adam(case.spec.lr), wrt=nnx.Param)

    x, y = random_batch(case)
    got = adapter.forward_backward(x, y)
    loss, grads = nnx.jit(nnx.value_and_grad(loss_fn))(model, jnp.asarray(np.swapaxes(x, 0, 1)),
                                                       jnp.asarray(y, jnp.int32))
    mine = {"layers.0.weight": grads.layers[0].kernel[...].T, "layers.2.weight": grads.layers[2].kernel[...].T,
            "layers.1.recurrent": grads.layers[1].recurrent_w[...].T}
    grad_err = max(rel_err(np.asarray(g), got.grads[k]) for k, g in mine.items())

    device_batches = [(jax.device_put(np.ascontiguousarray(np.swapaxes(dense[idx], 0, 1))), jax.device_put(labels[idx]))
                      for idx in order]
    epoch = iter(range(1, 10**6))

    def adapter_epoch():
        return adapter.train_epoch(next(epoch)).loss  # ends with a device_get: synchronised

    def own_epoch():  # its first 3 calls compile (scalars turn from weak to strong types): the warm-up absorbs them
        loss = None
        for xb, yb in device_batches:
            loss = train_step(model, optimizer, xb, yb)
        return jax.block_until_ready(loss)

    times = alternate({"adapter": adapter_epoch, "own": own_epoch}, rounds, steps)
    per_batch = {k: [t / batches for t in v] for k, v in times.items()}
    return {**summarize(per_batch), "loss_rel_err": rel_err(float(loss), got.loss), "grad_rel_err": grad_err}


def main(argv: list[str] | None = None) -> int:
    return per_epoch_main(__doc__, compare, "spyx adapter, epoch / batches", "Spyx's own loop, epoch / batches", argv)


if __name__ == "__main__":
    raise SystemExit(main())
