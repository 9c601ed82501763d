"""Parallel-in-time spiking neurons in PyTorch, time-major ``[T, B, N]``: the same functions as
:mod:`snnbench.runners.reference.parallel` (tests hold the two to each other).

PyTorch has no stable associative scan, so the parallel recurrences here are *chunked*: inside a
chunk of ``C`` steps the recurrence is one ``[C, C]`` matrix product with decays
``exp(L_t - L_s)`` of chunk-local log-decay sums ``L`` (bounded, so no precision is lost and no
cumulative product is divided by); a short loop carries the state across the ``T / C`` chunks.
Work grows as ``T * C``; ``C = 16`` was the fastest measured on a 2-core CPU (T = 4096).
"""

from __future__ import annotations

import math

import torch

from .spike import spike


def lif_noreset_loop(x: torch.Tensor, beta: float) -> torch.Tensor:
    v = torch.zeros_like(x[0])
    out = []
    for x_t in x:
        v = beta * v + x_t
        out.append(v)
    return torch.stack(out)


def lif_noreset_relu_loop(x: torch.Tensor, beta: float) -> torch.Tensor:
    """``v_t = relu(beta v_{t-1} + x_t)`` (``relu: true``; snnTorch's ``LeakyParallel``)."""
    v = torch.zeros_like(x[0])
    out = []
    for x_t in x:
        v = torch.relu(beta * v + x_t)
        out.append(v)
    return torch.stack(out)


def lif_noreset_fft(x: torch.Tensor, beta: float) -> torch.Tensor:
    T = x.shape[0]
    kernel = beta ** torch.arange(T, dtype=x.dtype, device=x.device)
    n = 2 * T
    spec = torch.fft.rfft(x, n=n, dim=0) * torch.fft.rfft(kernel, n=n).reshape((-1,) + (1,) * (x.ndim - 1))
    return torch.fft.irfft(spec, n=n, dim=0)[:T].to(x.dtype)


def chunked_linear_scan(log_a: torch.Tensor, b: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``h_t = exp(log_a_t) h_{t-1} + b_t`` (``h_{-1} = 0``) for ``[T, ...]`` inputs, chunk-parallel.

    Float32 accumulation; ``log_a <= 0`` is assumed (decays).
    """
    T = log_a.shape[0]
    rest = log_a.shape[1:]
    la = log_a.float().reshape(T, -1)
    bb = b.float().reshape(T, -1)
    h_prev = torch.zeros(la.shape[1], dtype=torch.float32, device=la.device)
    out = []
    idx = torch.arange(chunk, device=la.device)
    lower = (idx[:, None] >= idx[None, :])
    for start in range(0, T, chunk):
        l_c, b_c = la[start:start + chunk], bb[start:start + chunk]
        c = l_c.shape[0]
        L = torch.cumsum(l_c, dim=0)  # chunk-local: small magnitudes
        # decay[t, s, n] = exp(L_t - L_s) for s <= t: the product of a over (s, t].
        diff = L[:, None, :] - L[None, :, :]
        mask = lower[:c, :c, None]
        decay = torch.where(mask, torch.exp(torch.where(mask, diff, torch.zeros_like(diff))), torch.zeros_like(diff))
        h = torch.einsum("tsn,sn->tn", decay, b_c) + torch.exp(L) * h_prev
        out.append(h)
        h_prev = h[-1]
    return torch.cat(out).reshape((T,) + rest)


def lif_noreset_chunked(x: torch.Tensor, beta: float, chunk: int = 16) -> torch.Tensor:
    return chunked_linear_scan(torch.full_like(x, math.log(beta)), x, chunk).to(x.dtype)


def psn(x, weight, bias, surrogate="superspike", slope=1.0):
    T = x.shape[0]
    causal = torch.tril(torch.ones(T, T, dtype=x.dtype, device=x.device))
    h = torch.einsum("ts,s...->t...", weight * causal, x) + bias.reshape((T,) + (1,) * (x.ndim - 1))
    return spike(h, surrogate, slope), h


def masked_psn(x, weight, bias, k, surrogate="superspike", slope=1.0):
    T = x.shape[0]
    lag = torch.arange(T, device=x.device)[:, None] - torch.arange(T, device=x.device)[None, :]
    return psn(x, weight * ((lag >= 0) & (lag < k)).to(x.dtype), bias, surrogate, slope)


def causal_taps(x, taps):
    k, T = taps.shape[0], x.shape[0]
    padded = torch.cat([torch.zeros((k - 1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device), x])
    return sum(taps[j] * padded[k - 1 - j:k - 1 - j + T] for j in range(k))


def sliding_psn(x, taps, bias, surrogate="superspike", slope=1.0):
    h = causal_taps(x, taps) + bias
    return spike(h, surrogate, slope), h


def dsn_output(h, levels, surrogate="superspike", slope=1.0):
    if levels == 1:
        return spike(h - 0.5, surrogate, slope)
    r = torch.round(h)
    inside = ((r >= 0) & (r <= levels)).to(h.dtype)
    return torch.clamp(r, 0, levels) + (h - h.detach()) * inside  # straight-through inside the levels


def dsn_decay_log(x, conv_w, conv_b, tau):
    return torch.nn.functional.logsigmoid(causal_taps(x, conv_w) + conv_b) / tau


def dsn_parallel(x, conv_w, conv_b, tau=0.25, levels=1, surrogate="superspike", slope=1.0, chunk=16):
    x32 = x.float()
    log_a = dsn_decay_log(x32, conv_w.float(), conv_b.float(), tau)
    h = chunked_linear_scan(log_a, -torch.expm1(log_a) * x32, chunk)
    return dsn_output(h, levels, surrogate, slope).to(x.dtype), h


def dsn_serial(x, conv_w, conv_b, tau=0.25, levels=1, surrogate="superspike", slope=1.0):
    x32 = x.float()
    a = torch.exp(dsn_decay_log(x32, conv_w.float(), conv_b.float(), tau))
    h_t = torch.zeros_like(x32[0])
    hs = []
    for a_t, x_t in zip(a, x32):
        h_t = a_t * h_t + (1 - a_t) * x_t
        hs.append(h_t)
    h = torch.stack(hs)
    return dsn_output(h, levels, surrogate, slope).to(x.dtype), h
