"""The 2026 parallel neurons in the long-sequence suite: the reference's exact parallel LIF with reset
(``method: fixed_point``) gives the sequential LIF's spikes and membranes bit for bit; snnTorch's
``LeakyParallel`` / ``StateLeaky`` and Spyx's ``PSU_LIF`` pass the parity gate for the semantics they claim,
and refuse with a reason what they cannot express."""

from dataclasses import replace

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from snnbench.errors import SnnbenchError  # noqa: E402
from snnbench.harness import parity  # noqa: E402
from snnbench.runners import get_runner_class  # noqa: E402
from snnbench.runners.reference import neurons  # noqa: E402
from snnbench.runners.reference import parallel as P  # noqa: E402
from snnbench.spec import init_weights, load_suite, parse_suite  # noqa: E402


def current(T=600, seed=0, shape=(3, 17)):
    return jnp.asarray(np.random.default_rng(seed).normal(0.3, 1.0, (T, *shape)).astype(np.float32))


# ------------------------------------------------------------------ the exact parallel LIF with reset
@pytest.mark.parametrize("reset", ["subtract", "subtract_decayed", "zero"])
@pytest.mark.parametrize("chunk", [1, 16, 64, 1000])
def test_fixed_point_lif_is_the_sequential_lif_bit_for_bit(reset, chunk):
    x = current()
    beta = jnp.asarray(np.random.default_rng(1).uniform(0.8, 0.97, 17).astype(np.float32))  # per neuron
    seq = neurons.lif(x, beta, 1.0, reset, True, "superspike", 1.0)
    par = P.lif_fixed_point(x, beta, 1.0, reset, True, "superspike", 1.0, chunk=chunk)
    np.testing.assert_array_equal(np.asarray(par.spikes), np.asarray(seq.spikes))
    np.testing.assert_array_equal(np.asarray(par.membrane), np.asarray(seq.membrane))
    assert 0.05 < float(seq.spikes.mean()) < 0.6  # a test with spikes and resets to get right


def test_fixed_point_converges_within_its_chunk_count():
    x = current(T=1000)
    _, _, passes = P.lif_fixed_point_scan(x, 0.9, 1.0, "subtract", chunk=50)
    assert 1 <= int(passes) <= 1000 // 50
    _, _, one = P.lif_fixed_point_scan(x, 0.9, 1.0, "subtract", chunk=1000)
    assert int(one) == 1  # one chunk: the sequential scan itself


@pytest.mark.parametrize("detach", [True, False])
def test_fixed_point_gradients_are_the_sequential_ones(detach):
    x = current(T=300)
    beta = jnp.full((17,), 0.9)
    weights = jnp.linspace(0.0, 1.0, 300)[:, None, None]

    def grads(fn):
        def loss(x, beta):
            out = fn(x, beta, 1.0, "subtract", detach, "superspike", 1.0)
            return (out.spikes * weights).sum() + 0.01 * (out.membrane ** 2).sum()
        return jax.grad(loss, argnums=(0, 1))(x, beta)

    seq = grads(neurons.lif)
    par = grads(lambda *a: P.lif_fixed_point(*a, chunk=32))
    for a, b in zip(par, seq):  # the reverse recurrence by an associative scan: equal up to rounding
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


def test_fixed_point_network_in_the_reference_matches_its_serial_form():
    (case,) = [c for c in load_suite("longseq", quick=True).cases if c.id == "lif-fixedpoint-1L-T1024"]
    case = replace(case, spec=replace(case.spec, batch=4))
    ref = get_runner_class("reference")()
    ref.build(case, "cpu", 0)
    ref.set_weights(init_weights(case.network, 0))
    x = (np.random.default_rng(0).random((4, 1024, 64)) < 0.5).astype(np.float32)
    par, seq = ref.forward(x), ref.serial_forward(x)
    assert 0 < par.spikes[0].mean() < 1
    np.testing.assert_array_equal(par.spikes[0], seq.spikes[0])


def test_relu_and_fixed_point_are_validated():
    def net(layer):
        return {"suite": "s", "defaults": {"dataset": "random", "epochs": 0},
                "network": {"layers": [{"type": "linear", "out": 4}, layer]}, "cases": [{"id": "c"}]}

    with pytest.raises(SnnbenchError, match="relu"):
        parse_suite(net({"type": "lif", "relu": True}), "s.yaml")
    with pytest.raises(SnnbenchError, match="lif_noreset layer is evaluated by"):
        parse_suite(net({"type": "lif_noreset", "method": "fixed_point"}), "s.yaml")
    with pytest.raises(SnnbenchError, match="method"):
        parse_suite(net({"type": "lif", "method": "newton"}), "s.yaml")


# -------------------------------------------------------------------- the frameworks' parallel neurons
NEW = ["snntorch-parallel", "snntorch-stateleaky", "spyx-psu"]


def noreset_case(layers=1, T=64, relu=False, **spec):
    pairs = [{"type": "linear", "out": 16}, {"type": "lif_noreset", "relu": relu}] * layers
    return parse_suite({"suite": "p", "defaults": {"dataset": "random", "epochs": 0, "time_steps": T, "channels": 12,
                                                   "batch": 4, "input_rate": 0.5, **spec},
                        "network": {"neuron": {"beta": 0.9, "threshold": 1.0, "method": "assoc"},
                                    "surrogate": {"name": "superspike", "slope": 1.0}, "layers": pairs},
                        "cases": [{"id": "c"}]}, "p.yaml").cases[0]


def need(name):
    cls = get_runner_class(name)
    if not cls.available().ok:
        pytest.skip(cls.available().reason)
    return cls


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", ["snntorch-stateleaky", "spyx-psu"])
def test_no_reset_neurons_pass_parity_exactly(name, layers):
    need(name)
    res = parity.compare(noreset_case(layers), name, batch=4)
    assert res["status"] == "pass", parity.summary(res)
    assert sum(s["spikes_ref"] for s in res["spikes"]) > 0 and res["min_grad_cosine"] >= 0.999


def test_leaky_parallel_deviates_by_its_relu_and_the_reference_proves_it():
    need("snntorch-parallel")
    res = parity.compare(noreset_case(2), "snntorch-parallel", batch=4)
    assert res["status"] == "deviates", parity.summary(res)
    assert res["deviations"] and res["deviations"][0].startswith("membrane clipped at 0")
    assert sum(s["flips"] for s in res["spikes"]) > 0  # the clip changes the spikes: the deviation is real
    assert res["proof"]["agrees"] and sum(s["flips"] for s in res["proof"]["spikes"]) == 0
    exact = parity.compare(noreset_case(1, relu=True), "snntorch-parallel", batch=4)  # the clipped neuron itself
    assert exact["status"] == "pass", parity.summary(exact)


def test_spyx_psu_parallel_form_equals_its_own_step_form():
    cls = need("spyx-psu")
    case = noreset_case(2, T=128)
    r = cls()
    r.build(case, "cpu", 0)
    r.set_weights(init_weights(case.network, 0))
    x = (np.random.default_rng(0).random((4, 128, 12)) < 0.5).astype(np.float32)
    par, seq = r.forward(x), r.serial_forward(x)
    assert par.spikes[0].any()
    for a, b in zip(par.spikes, seq.spikes):
        assert (a != b).mean() < 1e-3  # associative scan vs step by step: at most a rounding flip


def test_associative_lif_is_psu_lif():
    pytest.importorskip("spyx")
    import spyx

    assert issubclass(spyx.nn.AssociativeLIF, spyx.nn.PSU_LIF)
    assert spyx.nn.AssociativeLIF.parallel is spyx.nn.PSU_LIF.parallel
    assert spyx.nn.AssociativeLIF.__call__ is spyx.nn.PSU_LIF.__call__


def learn_beta(case):
    layers = tuple(replace(la, learn_beta=True) if la.type == "lif_noreset" else la for la in case.network.layers)
    return replace(case, network=replace(case.network, layers=layers))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("what, reason", [
    ("lif", "lif is not expressed"), ("readout", "li is not expressed"), ("dtype", "dtype bfloat16"),
    ("learn_beta", "trainable decays")])
def test_new_runners_refuse_what_they_cannot_express(name, what, reason):
    cls = need(name)
    case = noreset_case(1)
    if what == "lif":
        case = load_suite("longseq", quick=True).cases[0]  # lif-seq-1L: a LIF with reset
    elif what == "readout":
        (case,) = [c for c in load_suite("longseq", quick=True).cases if c.id == "extrap-lif-noreset-1L"]
    elif what == "dtype":
        case = replace(case, spec=replace(case.spec, dtype="bfloat16"))
    else:
        case = learn_beta(case)
    ok = cls().supports(case)
    assert not ok.ok and reason in ok.reason, ok.reason


@pytest.mark.parametrize("name", ["snntorch-stateleaky", "spyx-psu"])
def test_unclipped_neurons_refuse_a_clipped_membrane(name):
    ok = need(name)().supports(noreset_case(1, relu=True))
    assert not ok.ok and "relu" in ok.reason


def test_longseq_runs_the_new_neurons_on_the_no_reset_cases_only():
    suite = load_suite("longseq", quick=True)
    assert set(NEW) <= set(suite.runners)
    for name in NEW:
        cls = need(name)
        accepted = {c.id for c in suite.cases if cls().supports(c).ok and (not c.spec.runners or name in c.spec.runners)}
        assert accepted == {"lif-noreset-assoc-1L-T256", "lif-noreset-assoc-1L-T1024", "lif-noreset-assoc-1L-T4096"}
