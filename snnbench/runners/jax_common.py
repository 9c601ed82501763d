"""What every JAX-based runner shares: device placement, the packed dataset on the device, one
compiled program per epoch (``lax.scan`` over batches) and per evaluation, the timing hooks.

Data path (as in the Spyx paper): the bit-packed split ``uint8 [N, T/8, C]`` is put on the device
once; each epoch one ``lax.scan`` over batches gathers a batch, unpacks it, optionally shifts it,
and takes an optax step. The host only sends the epoch's batch order (the permutation every runner
shares, :func:`snnbench.data.staging.epoch_batches`) and reads two scalars back.

JAX is imported inside methods: this module is imported by runner discovery, and JAX is optional.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from ..data.staging import SpikeDataset, epoch_batches, pack
from ..spec import LOSS_SCALE_PERIOD, LOSS_SCALE_START, Case, init_weights
from .base import EpochResult, EvalResult, ForwardResult, GemmFloor, GradResult, Runner, Support

PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "tpu": "tpu"}
#: float32 matrix products at full float32 precision on every device: JAX's default lets a GPU use
#: TF32 (10-bit mantissa) where PyTorch's does not, and the two would not compute the same thing.
MATMUL_PRECISION = "highest"


def precision_policy(dtype: str):
    """The ``jmp`` policy of a spec dtype: float32 parameters, compute in ``dtype``, float32 outputs."""
    import jax.numpy as jnp
    import jmp

    return jmp.Policy(param_dtype=jnp.float32, compute_dtype=jnp.dtype(dtype), output_dtype=jnp.float32)


def initial_loss_scale(dtype: str) -> dict:
    """The loss-scaling state carried in ``opt_state``: for float16 ``{"loss_scale", "counter"}``
    (dynamic), otherwise empty (no scaling). Plain arrays, not ``jmp``'s object: its pytree
    rebuilds itself through a check that ahead-of-time lowering's placeholders fail."""
    import jax.numpy as jnp

    if dtype != "float16":
        return {}
    return {"loss_scale": jnp.float32(LOSS_SCALE_START), "counter": jnp.int32(0)}


def loss_scale_of(state: dict):
    """The ``jmp`` loss scale of an :func:`initial_loss_scale` state (``NoOpLossScale`` when empty)."""
    import jmp

    if not state:
        return jmp.NoOpLossScale()
    return jmp.DynamicLossScale(state["loss_scale"], state["counter"], period=LOSS_SCALE_PERIOD)


def jax_device(device: str):
    """The first JAX device of ``device`` ('cpu' | 'gpu' | 'tpu' | 'auto'); raises RuntimeError if none."""
    import jax

    if device == "auto":
        return jax.devices()[0]
    return jax.devices(PLATFORMS[device])[0]


def jax_device_available(device: str) -> Support:
    try:
        jax_device(device)
    except RuntimeError as exc:
        import jax

        if device == "gpu":
            return Support.no(f"JAX {jax.__version__} here has no CUDA backend (a CPU-only jaxlib): install the "
                              "CUDA stack with 'make install-gpu' (docs/containers-gpu.md)")
        return Support.no(f"JAX has no {device} device ({str(exc).splitlines()[0]})")
    return Support.yes()


def jax_usable_devices() -> list[str]:
    """The devices JAX can use here: 'cpu', and '<platform>: <kind>' per GPU or TPU it sees."""
    import jax

    found = []
    for platform in ("cpu", "gpu", "tpu"):
        try:
            devices = jax.devices(platform)
        except RuntimeError:  # no backend for this platform in this jaxlib
            continue
        found += ["cpu"] if platform == "cpu" else [f"{platform}: {d.device_kind}" for d in devices]
    return found


class Placement:
    """Where a runner's arrays live: one device, or a data-parallel mesh over ``devices``.

    On a mesh, parameters, optimizer state and the staged data are replicated on every device and
    each batch is sharded along its batch axis (``shard_batch``); XLA's partitioner then runs each
    device's share of the batch and all-reduces the gradients of the replicated parameters, so the
    step computes what the one-device step computes (up to the order of the reduction).
    """

    AXIS = "data"

    def __init__(self, devices: list):
        import jax

        self.devices = list(devices)
        self.device = self.devices[0]
        if len(self.devices) > 1:
            self.mesh = jax.sharding.Mesh(np.array(self.devices), (self.AXIS,))
            self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        else:
            self.mesh = None

    @property
    def n(self) -> int:
        return len(self.devices)

    def put(self, tree):
        """Host arrays -> the device (one device) or every device of the mesh (replicated)."""
        import jax

        return jax.device_put(tree, self.device if self.mesh is None else self.replicated)

    def _batch_sharding(self, ndim: int, axis: int):
        import jax

        spec = [None] * ndim
        spec[axis] = self.AXIS
        return jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec(*spec))

    def put_batch(self, tree, axis: int = 0):
        """Host arrays -> device arrays sharded along ``axis`` (the batch axis) over the mesh."""
        import jax

        if self.mesh is None:
            return jax.device_put(tree, self.device)
        return jax.tree_util.tree_map(lambda a: jax.device_put(a, self._batch_sharding(np.ndim(a), axis)), tree)

    def shard_batch(self, x, axis: int = 0):
        """Inside a traced function: lay ``x`` out sharded along ``axis`` (no-op on one device)."""
        import jax

        if self.mesh is None:
            return x
        return jax.lax.with_sharding_constraint(x, self._batch_sharding(x.ndim, axis))


def jax_devices(device: str, n: int) -> list:
    """The first ``n`` JAX devices of ``device``; raises RuntimeError if there are fewer."""
    import jax

    first = jax_device(device)
    pool = jax.devices(first.platform)
    if len(pool) < n:
        hint = (" (on the CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N, which snnbench's workers set "
                "for data-parallel CPU cases)" if first.platform == "cpu" else "")
        raise RuntimeError(f"{n} {first.platform} devices requested, JAX sees {len(pool)}{hint}")
    return pool[:n]


def shift_channels(x, key, max_shift: int):
    """Shift each sample of ``x [T, B, C]`` along channels by a random integer in ``[-max_shift, max_shift]``.

    Zero fill (no wrap-around): channels shifted off the edge are dropped.
    """
    import jax
    import jax.numpy as jnp

    T, B, C = x.shape
    offsets = jax.random.randint(key, (B,), 0, 2 * max_shift + 1)
    padded = jnp.pad(x, ((0, 0), (0, 0), (max_shift, max_shift)))
    take = jax.vmap(lambda xb, o: jax.lax.dynamic_slice_in_dim(xb, o, C, axis=-1), in_axes=(1, 0), out_axes=1)
    return take(padded, offsets)


def shift_pixels(x, key, max_shift: int, image_shape: tuple[int, int, int]):
    """Translate each sample of image input ``x [T, B, C*H*W]`` (flat ``C, H, W``) by random integers
    ``dy, dx`` in ``[-max_shift, max_shift]``, the same for every step of a sample. Zero fill."""
    import jax
    import jax.numpy as jnp

    T, B, _ = x.shape
    C, H, W = image_shape
    s = max_shift
    offsets = jax.random.randint(key, (B, 2), 0, 2 * s + 1)
    padded = jnp.pad(x.reshape(T, B, C, H, W), ((0, 0), (0, 0), (0, 0), (s, s), (s, s)))

    def one(xb, o):  # xb [T, C, H + 2s, W + 2s]
        return jax.lax.dynamic_slice(xb, (0, 0, o[0], o[1]), (T, C, H, W))

    return jax.vmap(one, in_axes=(1, 0), out_axes=1)(padded, offsets).reshape(T, B, C * H * W)


def unpack_time_major(packed):
    """A packed batch ``uint8 [B, T/8, C]`` (as the staged split holds it) -> ``float32 [T, B, C]``.
    Swapped before unpacking, so the unpacked tensor is born time-major."""
    import jax.numpy as jnp

    return jnp.unpackbits(jnp.swapaxes(packed, 0, 1), axis=0).astype(jnp.float32)


def _shapes(tree) -> tuple:
    """The shapes and dtypes of a pytree's arrays: what an ahead-of-time executable is specialised to."""
    import jax

    return tuple((tuple(a.shape), str(a.dtype)) for a in jax.tree_util.tree_leaves(tree))


def steps_in_one_program(step):
    """``step(params, x, *rest) -> pytree`` over ``K`` stacked inputs ``xs [K, ...]`` in one
    ``lax.scan``, the outputs summed (so nothing is dead code and nothing is kept per step)."""
    import jax
    import jax.numpy as jnp

    def run(params, *stacked):
        shapes = jax.eval_shape(step, params, *(a[0] for a in stacked))
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(total, inputs):
            return jax.tree_util.tree_map(jnp.add, total, step(params, *inputs)), None

        total, _ = jax.lax.scan(body, zeros, stacked)
        return total

    return jax.jit(run)


class JaxRunnerBase(Runner):
    """Shared machinery for JAX runners.

    A subclass supplies the model as pure functions over a parameter pytree:
    ``_build_model(case, seed)``, ``_apply(params, x [T, B, C]) -> NetOutput``,
    ``_to_params(canonical)``, ``_from_params(params)`` and, for parameters that must stay frozen,
    ``_grad_mask(params)`` (a pytree of 0/1 multipliers).

    Precision (``spec.dtype``, defined in :data:`snnbench.spec.PRECISION`): the base casts the
    float32 parameters and the input to the compute dtype before ``_apply`` (a ``jmp`` policy), takes
    the readout back to float32 for the time mean and the loss, keeps parameters and optimizer state
    in float32, and for float16 scales the loss dynamically (``opt_state`` is ``(optax state, loss
    scale state)``; a step whose gradients are not finite is skipped). A runner lists the dtypes its
    ``_apply`` computes in (its membranes follow their input's dtype) in ``dtypes``.
    """

    framework = "jax"
    packages = ("jax", "jaxlib", "optax", "jmp")
    #: the loss goes through the shared ``logits_from_readout``: population codes and ``loss: count`` included
    shared_scoring = True
    #: packages that must import, and the extra that installs them
    requires: tuple[str, ...] = ("jax", "optax", "jmp")
    extra = "jax"
    device_memory_source = "jax Device.memory_stats()['peak_bytes_in_use']"
    #: trains data-parallel over ``spec.devices`` devices (the machinery is here; a runner opts in)
    data_parallel = False

    def __init__(self, unroll: int | None = None):
        self._unroll = unroll
        self.unroll = unroll or 1

    @staticmethod
    def default_unroll(platform: str) -> int:
        """Time-scan unroll factor per platform. On a GPU every iteration of a ``lax.scan`` (an XLA
        while loop) costs a launch and a host round trip for its condition; on the H100 the SHD
        network's forward took 9.0 ms for its 3 x 128 scan steps against Spyx's 2.1 ms for 128, about
        20 us an iteration, so the GPU default unrolls 8 steps per iteration. The CPU has no such
        cost, and there 1 is best."""
        return 1 if platform == "cpu" else 8

    @classmethod
    def available(cls) -> Support:
        import importlib

        for package in cls.requires:
            try:
                importlib.import_module(package)
            except ImportError as exc:
                return Support.no(f"missing package: {exc.name} (pip install 'snnbench[{cls.extra}]')")
        return Support.yes()

    def device_available(self, device: str) -> Support:
        return jax_device_available(device)

    @classmethod
    def usable_devices(cls) -> list[str]:
        return jax_usable_devices()

    def supports_devices(self, device: str, n: int) -> Support:
        if n == 1:
            return Support.yes()
        if not self.data_parallel:
            return super().supports_devices(device, n)
        try:
            jax_devices(device, n)
        except RuntimeError as exc:
            return Support.no(str(exc))
        return Support.yes()

    def device_label(self) -> str:
        platform = self.device.platform
        return "cpu" if platform == "cpu" else f"{platform}: {getattr(self.device, 'device_kind', platform)}"

    # ------------------------------------------------------------------- model (subclass hooks)
    def _build_model(self, case: Case, seed: int) -> None:
        raise NotImplementedError

    def _apply(self, params, x):
        raise NotImplementedError

    def _apply_with_spikes(self, params, x):
        """Like ``_apply`` but with every spiking layer's output (for parity); defaults to ``_apply``."""
        return self._apply(params, x)

    def _to_compute(self, params, x):
        """``(params, x)`` in the case's compute dtype (the ``jmp`` policy; a no-op at float32)."""
        return self.policy.cast_to_compute((params, x))

    def _mixed_apply(self, params, x):
        """``_apply`` at the case's precision."""
        return self._apply(*self._to_compute(params, x))

    def _mixed_apply_with_spikes(self, params, x):
        return self._apply_with_spikes(*self._to_compute(params, x))

    def _to_params(self, weights: dict[str, np.ndarray]):
        raise NotImplementedError

    def _from_params(self, params) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _grad_mask(self, params):
        return None

    def _common_extra(self) -> dict[str, Any]:
        """Facts every JAX runner's records carry."""
        return {"matmul_precision": MATMUL_PRECISION, "scan_unroll": self.unroll,
                "device_kind": str(getattr(self.device, "device_kind", "")),
                **({"data_parallel": self._data_parallel_facts()} if self.placement.n > 1 else {}),
                "compile_includes": "ahead-of-time lower + compile of the epoch program and the evaluation "
                                    "program (no execution)"}

    def _data_parallel_facts(self) -> dict[str, Any]:
        virtual = self.device.platform == "cpu"
        return {"devices": self.placement.n, "per_device_batch": self.case.spec.batch // self.placement.n,
                "global_batch": self.case.spec.batch, "mesh_axis": Placement.AXIS,
                "how": "jit over a 1-D mesh: parameters replicated, each batch sharded on its batch axis, "
                       "gradients all-reduced by XLA",
                **({"virtual_host_devices": "CPU devices forced by --xla_force_host_platform_device_count: "
                                            "they share the host's cores"} if virtual else {})}

    # ---------------------------------------------------------------------------------- build
    def build(self, case: Case, device: str, seed: int) -> None:
        import jax
        import optax

        from .reference.model import cross_entropy, logits_from_readout

        jax.config.update("jax_default_matmul_precision", MATMUL_PRECISION)
        self.case = case
        self.seed = seed
        self.placement = Placement(jax_devices(device, case.spec.devices))
        self.device = self.placement.device
        self.unroll = self._unroll or self.default_unroll(self.device.platform)
        self.policy = precision_policy(case.spec.dtype)
        self._build_model(case, seed)
        mode, run, population = case.spec.loss, self._mixed_apply, case.network.population

        def loss_fn(params, x, y):
            # the readout's time mean and the loss in float32, whatever the compute dtype
            logits = logits_from_readout(run(params, x).readout.astype(jax.numpy.float32), mode, population)
            return cross_entropy(logits, y), (jax.numpy.argmax(logits, -1) == y).sum()

        self.loss_fn = loss_fn
        lr = case.spec.lr
        self.optimizer = optax.adam(lr) if case.spec.optimizer == "adam" else optax.sgd(lr)
        self.key = jax.random.PRNGKey(seed)
        self.set_weights(init_weights(case.network, seed))
        mask = self._grad_mask(self.params)
        self._mask = None if mask is None else self.placement.put(mask)
        self._fwd_spikes = jax.jit(self._mixed_apply_with_spikes)  # parity: dense input
        self._grad = jax.jit(self._value_and_grad)
        # Timing: the step's input as the training loop hands it over (packed bits, unpacked in the
        # program; measured on Spyx, a dense float input made the step 20% slower than in its epoch).
        # A timing-only case has no training loop: dense input, as every runner gets.
        self._packed_steps = case.spec.dataset != "random"
        to_x = unpack_time_major if self._packed_steps else (lambda x: x)
        self._fwd = jax.jit(lambda params, xb: self._mixed_apply(params, to_x(xb)).readout)
        self._grad_timed = jax.jit(lambda params, xb, y: self._value_and_grad(params, to_x(xb), y))
        self._fwd_k = steps_in_one_program(lambda params, xb: self._mixed_apply(params, to_x(xb)).readout.sum())
        self._grad_k = steps_in_one_program(lambda params, xb, y: self._value_and_grad(params, to_x(xb), y)[1])
        self._steps_compiled: dict[tuple, Any] = {}  # (which, batch shapes) -> executable (precompile_steps)
        self._epoch = None
        self._eval = None

    def _value_and_grad(self, params, x, y, loss_scale=None):
        """``((loss, correct), grads)``; with a ``jmp`` loss scale the gradient is taken of the scaled
        loss and unscaled (float32 gradients of the float32 master parameters either way)."""
        import jax
        import jmp

        scale = loss_scale or jmp.NoOpLossScale()

        def scaled(params, x, y):
            loss, correct = self.loss_fn(params, x, y)
            return scale.scale(loss), (loss, correct)

        (_, (loss, correct)), grads = jax.value_and_grad(scaled, has_aux=True)(params, x, y)
        grads = scale.unscale(grads)
        if self._mask is not None:
            grads = jax.tree_util.tree_map(lambda g, m: g * m, grads, self._mask)
        return (loss, correct), grads

    def get_weights(self) -> dict[str, np.ndarray]:
        return self._from_params(self.params)

    def weight_dtypes(self) -> list[str]:
        import jax

        return sorted({str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(self.params)})

    def loss_scaling(self) -> str:
        if self.case.spec.dtype != "float16":
            return "none"
        return f"dynamic (jmp.DynamicLossScale: start {LOSS_SCALE_START:g}, period {LOSS_SCALE_PERIOD}, factor 2)"

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.params = self.placement.put(self._to_params(weights))
        self.opt_state = self.placement.put((self.optimizer.init(self.params), initial_loss_scale(self.case.spec.dtype)))

    # ------------------------------------------------------------------------------- one batch
    def _dense(self, x: np.ndarray, y: np.ndarray):
        """``x [B, T, C]`` -> device ``float32 [T, B, C]`` and labels (the parity path)."""
        assert x.ndim == 3 and x.shape[2] == self.case.network.inputs, f"expected [B, T, C], got {x.shape}"
        xt = np.ascontiguousarray(np.swapaxes(x, 0, 1), dtype=np.float32)
        return self.placement.put((xt, np.asarray(y, np.int32)))

    def prepare_batch(self, x: np.ndarray, y: np.ndarray) -> Any:
        if not self._packed_steps:
            xt, labels = self._dense(x, y)
            return self.placement.put_batch(xt, axis=1), self.placement.put_batch(labels)  # x is [T, B, C]
        assert x.ndim == 3 and x.shape[2] == self.case.network.inputs, f"expected [B, T, C], got {x.shape}"
        return self.placement.put_batch((pack(x), np.asarray(y, np.int32)))  # [B, T/8, C] as staged

    def prepare_batches(self, xs: np.ndarray, ys: np.ndarray) -> Any:
        """``K`` batches as the training loop runs them: stacked for one ``lax.scan`` program (epoch
        mode ``scan``), or a list of single batches, one compiled call each (epoch mode ``loop``)."""
        assert xs.ndim == 4 and xs.shape[3] == self.case.network.inputs, f"expected [K, B, T, C], got {xs.shape}"
        if self._epoch_mode() == "loop":
            return [self.prepare_batch(x, y) for x, y in zip(xs, ys)]
        labels = self.placement.put_batch(np.asarray(ys, np.int32), axis=1)  # [K, B]
        if self._packed_steps:
            return self.placement.put_batch(np.stack([pack(x) for x in xs]), axis=1), labels  # [K, B, T/8, C]
        stacked = np.ascontiguousarray(np.swapaxes(xs, 1, 2), dtype=np.float32)  # [K, T, B, C]
        return self.placement.put_batch(stacked, axis=2), labels

    def fwd_step(self, batch: Any) -> Any:
        return self._fwd(self.params, batch[0])

    def fwdbwd_step(self, batch: Any) -> Any:
        (loss, _), grads = self._grad_timed(self.params, *batch)
        return loss, grads

    def fwd_steps(self, batches: Any) -> Any:
        if isinstance(batches, list):  # loop mode: every call's result is waited on, not only the last
            return [self.fwd_step(batch) for batch in batches]
        return self._steps_program("fwd", batches)(self.params, batches[0])

    def fwdbwd_steps(self, batches: Any) -> Any:
        if isinstance(batches, list):
            return [self.fwdbwd_step(batch) for batch in batches]
        return self._steps_program("fwdbwd", batches)(self.params, *batches)

    def _steps_program(self, which: str, batches: Any):
        """The K-step program for ``batches``: the executable compiled ahead by :meth:`precompile_steps`
        for batches of these shapes, else the jitted function (which compiles on its first call)."""
        compiled = self._steps_compiled.get((which, _shapes(batches)))
        return compiled or (self._fwd_k if which == "fwd" else self._grad_k)

    def precompile_steps(self, batches: Any, which: str) -> bool:
        if isinstance(batches, list):  # loop mode: the per-call step, already warm
            return False
        fn, args = (self._fwd_k, (batches[0],)) if which == "fwd" else (self._grad_k, tuple(batches))
        self._steps_compiled[(which, _shapes(batches))] = fn.lower(self.params, *args).compile()
        return True

    def steps_reuse_step(self, batches: Any) -> bool:
        return isinstance(batches, list)  # loop mode; a stacked [K, ...] batch is one scan program

    def forward(self, x: np.ndarray) -> ForwardResult:
        xt, _ = self._dense(x, np.zeros(len(x)))
        out = self._fwd_spikes(self.params, xt)
        return ForwardResult(
            spikes=[np.swapaxes(np.asarray(s, np.float32), 0, 1) for s in out.spikes],
            readout=np.swapaxes(np.asarray(out.readout, np.float32), 0, 1),
            dtype=str(out.spikes[0].dtype) if out.spikes else str(out.readout.dtype),
        )

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> GradResult:
        (loss, _), grads = self._grad(self.params, *self._dense(x, y))
        return GradResult(float(loss), self._from_params(grads))

    # -------------------------------------------------------------------------------- training
    def stage(self, train: SpikeDataset, test: SpikeDataset) -> dict[str, Any]:
        B = self.case.spec.batch
        self.n_train = len(train)
        self.n_batches = self.n_train // B
        # Pad the test split to whole batches; the mask keeps padding out of the figures.
        n_test = len(test)
        pad = (-n_test) % B
        test_packed = np.concatenate([test.packed, np.zeros((pad,) + test.packed.shape[1:], np.uint8)])
        test_labels = np.concatenate([test.labels, np.zeros(pad, np.int32)]).astype(np.int32)
        mask = np.concatenate([np.ones(n_test, bool), np.zeros(pad, bool)])
        self.train_data = self.placement.put((train.packed, train.labels.astype(np.int32)))
        self.test_data = self.placement.put(
            (test_packed.reshape(-1, B, *test.packed.shape[1:]), test_labels.reshape(-1, B), mask.reshape(-1, B)))
        self.n_test = n_test
        return {
            "staged_bytes_packed": int(train.packed.nbytes + test_packed.nbytes),
            "staged_bytes_dense_float32": int((train.packed.size + test_packed.size) * 8 * 4),
        }

    #: XLA:CPU's own convolution (its YNNPACK path, JAX 0.10) runs inside a loop body about 2x slower
    #: than the same step compiled alone; a runner whose convolutions are not XLA's sets this False.
    xla_convolutions: ClassVar[bool] = True

    def _epoch_mode(self) -> str:
        """``scan``: the whole epoch is one compiled program (``lax.scan`` over batches). ``loop``: one
        compiled step per batch, launched from Python over the same device-resident data: networks
        with XLA's convolutions on the CPU (see :attr:`xla_convolutions`)."""
        conv = any(layer.type == "conv2d" for layer in self.case.network.layers)
        return "loop" if conv and self.xla_convolutions and self.device.platform == "cpu" else "scan"

    def _epoch_text(self) -> str:
        if self._epoch_mode() == "scan":
            return "jit epoch: lax.scan over batches"
        return "jit step per batch from a Python loop, data on the device (XLA:CPU convolutions run ~2x slower in a scan)"

    def _make_step(self):
        """One optimizer step on the samples ``idx [B]`` of the staged packed split (pure; both modes)."""
        import jmp
        import optax

        shift = self.case.spec.augment_shift
        value_and_grad, optimizer = self._value_and_grad, self.optimizer
        image_shape = tuple(self.case.network.input_shape)  # (C, H, W): shift in space, else along channels

        shard = self.placement.shard_batch

        def step(params, opt_state, packed, labels, idx, key):
            idx = shard(idx)  # data-parallel: each device gathers and runs its share of the batch
            x = unpack_time_major(packed[idx])
            if shift:
                x = shift_pixels(x, key, shift, image_shape) if len(image_shape) == 3 else shift_channels(x, key, shift)
            inner, scale_state = opt_state
            scale = loss_scale_of(scale_state)
            (loss, correct), grads = value_and_grad(params, x, labels[idx], scale)
            updates, new_inner = optimizer.update(grads, inner, params)
            new_params = optax.apply_updates(params, updates)
            if scale_state:  # float16: skip a step whose gradients overflowed, adjust the scale
                finite = jmp.all_finite(grads)
                new_params, new_inner = jmp.select_tree(finite, (new_params, new_inner), (params, inner))
                scale = scale.adjust(finite)
                scale_state = {"loss_scale": scale.loss_scale, "counter": scale.counter}
            return new_params, (new_inner, scale_state), loss, correct

        return step

    def _batch_order(self, epoch: int):
        """The epoch's batches (host permutation shared by every runner) and an augmentation key per batch."""
        import jax

        perm = self.placement.put(epoch_batches(self.seed, epoch, self.n_train, self.case.spec.batch))
        keys = jax.random.split(jax.random.fold_in(self.key, epoch), len(perm))
        return perm, keys

    def _make_epoch(self):
        import jax

        step = self._make_step()

        def epoch(params, opt_state, perm, keys, packed, labels):
            def body(carry, inputs):
                params, opt_state, loss, correct = step(*carry, packed, labels, *inputs)
                return (params, opt_state), (loss, correct)

            (params, opt_state), (losses, correct) = jax.lax.scan(body, (params, opt_state), (perm, keys))
            return params, opt_state, losses.mean(), correct.sum()

        return jax.jit(epoch, donate_argnums=(0, 1))

    def _make_eval(self):
        import jax
        import jax.numpy as jnp

        from .reference.model import logits_from_readout

        run, mode, shard = self._mixed_apply, self.case.spec.loss, self.placement.shard_batch
        population = self.case.network.population

        def evaluate(params, packed, labels, mask):
            def step(totals, batch):
                p, y, m = (shard(a) for a in batch)
                readout = run(params, unpack_time_major(p)).readout.astype(jnp.float32)
                logits = logits_from_readout(readout, mode, population)
                logp = jax.nn.log_softmax(logits, axis=-1)
                nll = -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
                correct = (jnp.argmax(logits, -1) == y) & m
                return (totals[0] + jnp.where(m, nll, 0.0).sum(), totals[1] + correct.sum()), None

            (nll, correct), _ = jax.lax.scan(step, (jnp.float32(0), jnp.int32(0)), (packed, labels, mask))
            return nll, correct

        return jax.jit(evaluate)

    def compile(self) -> float:
        """Lower and compile the training and evaluation programs (ahead of time, nothing runs)."""
        import jax

        t0 = time.perf_counter()
        perm, keys = self._batch_order(0)  # example arguments: shapes only
        if self._epoch_mode() == "scan":
            self._epoch = self._make_epoch().lower(self.params, self.opt_state, perm, keys, *self.train_data).compile()
        else:
            self._step = (jax.jit(self._make_step(), donate_argnums=(0, 1))
                          .lower(self.params, self.opt_state, *self.train_data, perm[0], keys[0]).compile())
            self._epoch = self._loop_epoch
        self._eval = self._make_eval().lower(self.params, *self.test_data).compile()
        return time.perf_counter() - t0

    def _loop_epoch(self, params, opt_state, perm, keys, packed, labels):
        """The ``loop`` mode's epoch: the compiled step per batch, losses summed on the device."""
        losses, correct = 0.0, 0
        for idx, k in zip(perm, keys):
            params, opt_state, loss, right = self._step(params, opt_state, packed, labels, idx, k)
            losses, correct = losses + loss, correct + right
        return params, opt_state, losses / self.n_batches, correct

    def train_epoch(self, epoch: int) -> EpochResult:
        import jax

        if self._epoch is None:
            self.compile()
        perm, keys = self._batch_order(epoch)
        self.params, self.opt_state, loss, correct = self._epoch(self.params, self.opt_state, perm, keys,
                                                                 *self.train_data)
        loss, correct = jax.device_get((loss, correct))  # waits for the epoch: the barrier
        n = self.n_batches * self.case.spec.batch
        return EpochResult(loss=float(loss), accuracy=float(correct) / n, samples=n)

    def evaluate(self) -> EvalResult:
        import jax

        if self._eval is None:
            self.compile()
        nll, correct = jax.device_get(self._eval(self.params, *self.test_data))
        return EvalResult(accuracy=float(correct) / self.n_test, loss=float(nll) / self.n_test, samples=self.n_test)

    # ---------------------------------------------------------------------------------- device
    def barrier(self, value: Any = None) -> None:
        import jax

        jax.block_until_ready(self.params if value is None else value)

    def gemm_floor(self) -> GemmFloor:
        import jax
        import jax.numpy as jnp

        from ..spec import gemm_shapes
        from .reference.dense import weight_grad

        shapes = gemm_shapes(self.case)
        key = jax.random.PRNGKey(0)
        dt = self.policy.compute_dtype  # the floor at the case's compute dtype
        xs = [jax.device_put(jax.random.normal(key, (m, k), dt), self.device) for m, k, _ in shapes]
        ws = [jax.device_put(jax.random.normal(key, (k, n), dt), self.device) for _, k, n in shapes]
        gs = [jax.device_put(jax.random.normal(key, (m, n), dt), self.device) for m, _, n in shapes]
        fwd = jax.jit(lambda xs, ws: [x @ w for x, w in zip(xs, ws)])
        copy = self.device.platform == "cpu"  # the weight gradient's fastest form here (reference/dense.py)
        fwdbwd = jax.jit(lambda xs, ws, gs: ([x @ w for x, w in zip(xs, ws)],
                                             [weight_grad(x, g, copy) for x, g in zip(xs, gs)],
                                             [g @ w.T for g, w in zip(gs[1:], ws[1:])]))
        return GemmFloor(fwd=lambda: fwd(xs, ws), fwdbwd=lambda: fwdbwd(xs, ws, gs), framework="jax")

    def reset_peak_memory(self) -> bool:
        # JAX has no reset for its device peak; on the CPU device memory is host memory (no stats).
        return self.peak_memory_bytes() is None

    def peak_memory_bytes(self) -> int | None:
        stats = self.device.memory_stats() if hasattr(self.device, "memory_stats") else None
        return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None
