"""The spike non-linearity in PyTorch: the Heaviside step with the canonical surrogate derivatives
of :mod:`snnbench.runners.reference.surrogates`.

``SurrogateSpike`` is defined here, at module level, before anything is compiled: an
``autograd.Function`` class created inside a forward pass cannot be traced by ``torch.compile``
(its graph breaks there and the rest runs eagerly).
"""

from __future__ import annotations

import math

import torch


def surrogate_grad_torch(name: str, x: torch.Tensor, slope: float) -> torch.Tensor:
    """The canonical surrogate derivative at ``x`` (same formulas as the JAX reference)."""
    if name == "arctan":
        return (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * x) ** 2)
    if name == "superspike":
        return 1.0 / (1.0 + slope * x.abs()) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(slope * x)
        return slope * s * (1.0 - s)
    if name == "triangular":
        return torch.clamp(1.0 - slope * x.abs(), min=0.0)
    if name == "boxcar":
        return (x.abs() < 1.0 / slope).to(x.dtype)
    if name == "straight_through":
        return torch.ones_like(x)
    raise ValueError(f"unknown surrogate {name!r}")


class SurrogateSpike(torch.autograd.Function):
    """``1[x > 0]`` forward; the canonical surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x, name: str, slope: float):
        ctx.save_for_backward(x)
        ctx.name, ctx.slope = name, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad_torch(ctx.name, x, ctx.slope), None, None


def spike(x: torch.Tensor, name: str, slope: float) -> torch.Tensor:
    """Heaviside step of ``x`` (``v - threshold``) with the canonical surrogate gradient."""
    return SurrogateSpike.apply(x, name, slope)


def delay_one_step(spikes: torch.Tensor) -> torch.Tensor:
    """``spikes [T, ...]`` one step later, zeros at ``t = 0`` (``spike_from: previous``)."""
    return torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
