"""Suite validation: every bad field is named with its file."""

import copy

import numpy as np
import pytest
import yaml

from snnbench.errors import SnnbenchError
from snnbench.spec import case_from_dict, case_to_dict, check_weights, init_weights, load_suite, parse_suite

from .conftest import tiny_network_yaml

GOOD = {
    "suite": "t",
    "defaults": {"time_steps": 16, "channels": 8, "batch": 4, "epochs": 1},
    "network": tiny_network_yaml(),
    "cases": [{"id": "a"}, {"id": "b", "batch": 8}],
}


def test_good_suite_parses():
    suite = parse_suite(GOOD, "t.yaml")
    assert [c.id for c in suite.cases] == ["a", "b"]
    case = suite.cases[1]
    assert case.spec.batch == 8 and case.network.inputs == 8
    assert case.network.sizes() == [32, 32, 20, 20] and case.network.hidden_sizes() == [32]
    assert case_from_dict(case_to_dict(case)) == case


def test_quick_overrides_apply():
    data = {**GOOD, "quick": {"epochs": 7}}
    assert parse_suite(data, "t.yaml", quick=True).cases[0].spec.epochs == 7
    assert parse_suite(data, "t.yaml", quick=False).cases[0].spec.epochs == 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["defaults"].update(batch="big"), r"t.yaml.cases\[0\].batch: expected an integer"),
        (lambda d: d["defaults"].update(colour=1), r"unknown field 'colour'"),
        (lambda d: d["defaults"].update(time_steps=12), r"time_steps: must be a multiple of 8"),
        (lambda d: d["defaults"].update(loss="median"), r"loss: 'median' is not one of"),
        (lambda d: d["network"]["layers"][1].update(reset="soft"), r"layers\[1\].reset: 'soft' is not one of"),
        (lambda d: d["network"]["layers"][1].update(beta=1.5), r"layers\[1\].beta: must be in"),
        (lambda d: d["network"]["layers"].pop(), r"end in an 'li' readout|needs a neuron layer"),
        (lambda d: d["network"].update(surrogate={"name": "magic"}), r"surrogate.name: 'magic' is not one of"),
        (lambda d: d["cases"].append({"id": "a"}), r"duplicate case id 'a'"),
        (lambda d: d.pop("cases"), r"t.yaml.cases: expected a non-empty list"),
    ],
)
def test_bad_suites_name_the_field(mutate, message):
    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(SnnbenchError, match=message):
        parse_suite(data, "t.yaml")


def test_load_suite_errors(tmp_path):
    with pytest.raises(SnnbenchError, match="unknown suite 'nope'"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: x\ncases: [\n")
    with pytest.raises(SnnbenchError, match=r"bad.yaml: malformed YAML at line"):
        load_suite(str(bad))


def test_shipped_suites_are_valid():
    for name in ("shd",):
        assert load_suite(name).cases
        assert load_suite(name, quick=True).cases


def test_canonical_init_is_deterministic_and_checked():
    net = parse_suite(GOOD, "t.yaml").cases[0].network
    a, b = init_weights(net, 1), init_weights(net, 1)
    assert set(a) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
    assert a["layers.0.weight"].shape == (32, 8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    check_weights(net, a)
    a.pop("layers.0.bias")
    with pytest.raises(ValueError, match="missing"):
        check_weights(net, a)


def test_yaml_dump_roundtrip_of_good_suite(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert load_suite(str(path)).name == "t"
