"""A synthetic long-range task for the long-sequence suite: remember a cue.

Channels ``0 .. 4 * group - 1`` form four cue groups. During the first ``cue_steps`` steps the
group of the sample's class fires with probability 0.5 per channel and step; after that, and on
every channel, only background noise fires (probability 0.02). The class must be read from the
network's output at the *last* step (``loss: last``), so the network has to carry the cue across
the whole sequence. The same generator makes longer sequences for the extrapolation test: the cue
is identical, only the noise lasts longer.
"""

from __future__ import annotations

import numpy as np

from .staging import SpikeDataset, pack

CLASSES = 4
CUE_STEPS = 32
CUE_RATE = 0.5
NOISE_RATE = 0.02


def make_cue_split(n: int, time_steps: int, channels: int, seed: int) -> SpikeDataset:
    """``n`` samples of length ``time_steps`` over ``channels`` inputs, bit-packed."""
    group = channels // (2 * CLASSES)  # half the channels carry cues, half only noise
    if group < 1:
        raise ValueError(f"the cue task needs at least {2 * CLASSES} channels")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n).astype(np.int32)
    dense = rng.random((n, time_steps, channels), dtype=np.float32) < NOISE_RATE
    cue = min(CUE_STEPS, time_steps)
    for k in range(CLASSES):
        rows = labels == k
        burst = rng.random((int(rows.sum()), cue, group), dtype=np.float32) < CUE_RATE
        dense[rows, :cue, k * group:(k + 1) * group] |= burst
    meta = {"dataset": "cue", "num_classes": CLASSES, "time_steps": time_steps, "channels": channels,
            "synthetic": True, "cue_steps": cue}
    return SpikeDataset(pack(dense), labels, time_steps, meta)
