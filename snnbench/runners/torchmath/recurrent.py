"""The canonical recurrent LIF (``recurrent: true`` in :mod:`snnbench.spec`) in PyTorch: the layer's
own previous spikes feed back through ``V``. Written by hand for the ``torch`` runners; the same
equations as :func:`snnbench.runners.reference.neurons.lif_recurrent`."""

from __future__ import annotations

import torch

from .spike import spike


def membrane_update(v, i_t, r, beta, threshold: float, reset: str):
    """``v_{t-1}, I_t, r_t -> v_t`` by the canonical rule of ``reset`` (``r_t = s_{t-1}``, detached or
    not by the caller); every tensor ``[B, N]``, ``beta`` a float or ``[N]``."""
    if reset == "subtract":
        return beta * v + i_t - threshold * r
    if reset == "subtract_decayed":
        return beta * (v - threshold * r) + i_t
    if reset == "zero":
        return beta * (1.0 - r) * v + i_t
    return beta * v + i_t


def lif_recurrent_sequence(current: torch.Tensor, recurrent: torch.Tensor, beta, threshold: float, reset: str,
                           detach: bool, surrogate: tuple[str, float], alpha: float | None = None) -> torch.Tensor:
    """Spikes ``[T, B, N]`` of a recurrent LIF driven by ``current [T, B, N]`` (``W x_t + b``).

    ``recurrent`` is ``V [N, N]`` (``V[j, k]`` from neuron ``k`` to ``j``): each step adds
    ``s_{t-1} @ V.T`` to the input (``s_{-1} = 0``), to the synaptic current when ``alpha`` is given
    (``cuba_lif``). The recurrent term keeps its gradient; ``detach`` stops only the reset's.
    """
    v = torch.zeros_like(current[0])
    syn, s = torch.zeros_like(v), torch.zeros_like(v)
    w = recurrent.t().to(current.dtype)
    out = []
    for i_t in current:
        i_t = i_t + s @ w
        if alpha is not None:
            syn = alpha * syn + i_t
            i_t = syn
        v = membrane_update(v, i_t, s.detach() if detach else s, beta, threshold, reset)
        s = spike(v - threshold, *surrogate)
        out.append(s)
    return torch.stack(out)
