"""``snnbench check-runner``: every built-in runner conforms (parity, refusals and dtypes on the quick
SHD case; the timing checks are `make bench-check`'s), and three runners that each break
the contract in one way fail, naming the check."""

import pytest

from snnbench.runners import registry

from .test_cli import snnbench

PLUGINS = {"SNNBENCH_PLUGINS": "tests.broken_runners"}


@pytest.mark.parametrize("name", list(registry()))
def test_every_built_in_runner_conforms(name):
    """In this process (the command line itself is exercised below): every check that is not timing."""
    from snnbench.harness.conformance import check_runner
    from snnbench.spec import load_suite

    cls = registry()[name]
    if not cls.available().ok:
        pytest.skip(cls.available().reason)
    checks = list(check_runner(name, [load_suite("shd", quick=True)], timing=False))
    failed = [f"{c.check} {c.subject}: {c.detail}" for c in checks if not c.ok]
    assert checks and not failed, failed


@pytest.mark.parametrize("name, suites, check", [
    ("broken-reset", "shd", "parity"),
    ("broken-dtype", "shd", "dtype"),
    ("broken-unsupported", "nmnist", "refusals"),
])
def test_a_broken_runner_fails_naming_the_check(name, suites, check):
    pytest.importorskip("torch")
    p = snnbench("check-runner", name, "--suites", suites, "--no-timing", env_extra=PLUGINS)
    assert p.returncode == 1, p.stdout + p.stderr
    failed = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("FAIL")]
    assert failed and set(failed) == {check}, p.stdout
    assert f"{name} does not conform" in p.stderr and f"({check})" in p.stderr


def test_unknown_runner_is_one_line():
    p = snnbench("check-runner", "nope")
    assert p.returncode == 2 and p.stderr.startswith("snnbench: error: unknown runner 'nope'")
