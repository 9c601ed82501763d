"""Neuron dynamics as pure JAX functions over whole sequences.

All functions take the input current time-major, ``current: [T, B, N]`` (float), and return arrays
of the same shape. The weight products are done for all time steps at once outside these
functions (one large GEMM per layer), so the scans below are element-wise and cheap.

The equations are the canonical ones of :mod:`snnbench.spec`: the reset at step ``t`` is driven by
the spike of step ``t - 1`` (snnTorch's order), and ``H(0) = 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .surrogates import spike


class LIFOutput(NamedTuple):
    spikes: jax.Array  # [T, B, N], 0/1
    membrane: jax.Array  # [T, B, N], v_t after integration (before the next step's reset)


def lif(
    current: jax.Array,
    beta: jax.Array | float,
    threshold: float = 1.0,
    reset: str = "subtract",
    detach_reset: bool = True,
    surrogate: str = "arctan",
    slope: float = 2.0,
    unroll: int = 1,
) -> LIFOutput:
    """Leaky integrate-and-fire over a sequence.

    Args:
      current: input current ``[T, B, N]``.
      beta: membrane decay per step, a scalar or ``[N]``; clipped to ``[0, 1]``.
      threshold: firing threshold (same units as the membrane).
      reset: ``"subtract"`` (v -= threshold), ``"zero"`` (v = 0) or ``"none"``.
      detach_reset: stop the gradient through the reset term.
      surrogate, slope: surrogate derivative of the step (see :mod:`.surrogates`).
      unroll: ``lax.scan`` unroll factor (a speed knob; the result does not change).

    Returns:
      spikes and membrane, both ``[T, B, N]``.
    """
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)

    def step(carry, i_t):
        v, s = carry
        r = jax.lax.stop_gradient(s) if detach_reset else s
        if reset == "subtract":
            v = beta * v + i_t - threshold * r
        elif reset == "zero":
            v = beta * (1.0 - r) * v + i_t
        else:
            v = beta * v + i_t
        s = spike(v - threshold, surrogate, slope)
        return (v, s), (s, v)

    zeros = jnp.zeros(current.shape[1:], current.dtype)
    _, (spikes, membrane) = jax.lax.scan(step, (zeros, zeros), current, unroll=unroll)
    return LIFOutput(spikes, membrane)


def integrate_and_fire(current: jax.Array, **kwargs) -> LIFOutput:
    """IF neuron: :func:`lif` with ``beta = 1`` (no leak)."""
    return lif(current, 1.0, **kwargs)


def leaky_integrator(current: jax.Array, beta: jax.Array | float, unroll: int = 1) -> jax.Array:
    """Non-spiking leaky integrator (readout): ``v_t = beta * v_{t-1} + I_t``. Returns ``v [T, B, N]``."""
    beta = jnp.clip(jnp.asarray(beta, current.dtype), 0.0, 1.0)

    def step(v, i_t):
        v = beta * v + i_t
        return v, v

    _, v = jax.lax.scan(step, jnp.zeros(current.shape[1:], current.dtype), current, unroll=unroll)
    return v


def synaptic_current(current: jax.Array, alpha: float, unroll: int = 1) -> jax.Array:
    """First-order synapse ``syn_t = alpha * syn_{t-1} + I_t``: the drive of a current-based LIF."""
    return leaky_integrator(current, alpha, unroll=unroll)


def cuba_lif(current: jax.Array, alpha: float, beta: jax.Array | float, **kwargs) -> LIFOutput:
    """Current-based LIF: a synaptic low-pass filter feeding :func:`lif`."""
    return lif(synaptic_current(current, alpha, kwargs.get("unroll", 1)), beta, **kwargs)
