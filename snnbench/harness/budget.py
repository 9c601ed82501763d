"""What a job needs in memory, estimated from its case before anything is allocated.

The estimate is a lower bound, so that it refuses only what cannot fit (``hidden: 1e9``, ``time_steps:
1e7``, ``channels: 1e9`` used to pass validation and end as ``oom`` inside a worker):

* weights: every parameter in float32 (:func:`~snnbench.spec.param_shapes`), times the copies training keeps
  (the weights and their gradients; Adam's two moments besides);
* activations: one float32 value per sample, step and layer output (what the backward pass must keep);
* inputs: the two dense float32 batches the per-step timing stages at the least;
* data: the train and test splits bit-packed, plus one split dense (uint8) while it is binned.

On a CPU all of it is host memory; on a GPU or TPU the host holds the data, the inputs and one copy of the
weights. The host part is held against the machine's available memory and the suite's ``memory_limit_gb``.
"""

from __future__ import annotations

import math
from typing import Any

from .. import limits
from ..spec import Case, param_shapes

FLOAT = 4
#: samples the cue task generates when the case does not say (snnbench.data.load_dataset)
CUE_SIZES = (2048, 512)


def case_memory(case: Case, n_train: int, n_test: int) -> dict[str, int]:
    """Bytes a job of ``case`` needs at the least, by part, and ``host``: the part in host memory."""
    s, net = case.spec, case.network
    params = sum(math.prod(shape) for shape in param_shapes(net).values())
    copies = (4 if s.optimizer == "adam" else 2) if s.epochs else 2
    weights = params * FLOAT * copies
    activations = s.batch * s.time_steps * sum(net.sizes()) * FLOAT
    inputs = 2 * s.batch * s.time_steps * net.inputs * FLOAT
    per_sample = s.time_steps * net.inputs
    data = (n_train + n_test) * per_sample // 8 + max(n_train, n_test) * per_sample if n_train or n_test else 0
    on_host = s.device == "cpu" or s.device == "auto"
    host = weights + activations + inputs + data if on_host else params * FLOAT + inputs + data
    return {"weights": weights, "activations": activations, "inputs": inputs, "data": data, "host": host}


def split_sizes(case: Case, source: Any) -> tuple[int, int]:
    """The training and test samples a case loads (0, 0 for random input)."""
    s = case.spec
    if s.dataset == "cue":
        return s.train_samples or CUE_SIZES[0], s.test_samples or CUE_SIZES[1]
    if source is None:
        return 0, 0
    n_train = min(s.train_samples or source.train_samples, source.train_samples)
    n_test = min(s.test_samples or source.test_samples, source.test_samples)
    return n_train, n_test


def check_cases_fit(cases: list[tuple[Case, Any]], memory_limit_gb: float | None) -> None:
    """One error line for the first case whose estimate passes the suite's limit or the machine's memory."""
    limit = int(memory_limit_gb * 2**30) if memory_limit_gb else None
    seen = set()
    for case, source in cases:
        if case.id in seen:
            continue
        seen.add(case.id)
        est = case_memory(case, *split_sizes(case, source))
        parts = [f"{limits.fmt_bytes(est[k])} of {label}" for k, label in (
            ("weights", "weights and optimizer state"), ("activations", "activations"),
            ("inputs", "input batches"), ("data", "data")) if est[k]]
        limits.check_memory(est["host"], f"case {case.id}", ", ".join(parts), limit_bytes=limit,
                            limit_name="the suite's memory_limit_gb",
                            hint="make it smaller (hidden sizes, time_steps, channels, batch, samples)")
