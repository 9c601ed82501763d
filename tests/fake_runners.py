"""Runners that misbehave on purpose, loaded into workers through ``SNNBENCH_PLUGINS``.

They let the harness tests check timing accuracy and every failure status without a framework.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from snnbench.runners.base import EpochResult, EvalResult, ForwardResult, GradResult, Runner, RunnerInfo, Support

FWD_S = 0.020
FWDBWD_S = 0.050
EPOCH_S = 0.05


class SleepRunner(Runner):
    """Takes a known time for everything: the harness must measure it."""

    name = "fake-sleep"
    framework = "fake"

    @classmethod
    def available(cls) -> Support:
        return Support.yes()

    def device_available(self, device: str) -> Support:
        return Support.yes() if device in ("cpu", "auto") else Support.no(f"no {device}")

    def info(self) -> RunnerInfo:
        return RunnerInfo("fake", "0", "time.sleep")

    def build(self, case, device, seed):
        self.case = case
        self.w = {}

    def get_weights(self):
        return self.w

    def set_weights(self, weights):
        self.w = dict(weights)

    def forward(self, x):
        B, T, _ = x.shape
        return ForwardResult([], np.zeros((B, T, self.case.network.outputs), np.float32))

    def forward_backward(self, x, y):
        return GradResult(0.0, {k: np.zeros_like(v) for k, v in self.w.items()})

    def prepare_batch(self, x, y):
        return x

    def fwd_step(self, batch):
        time.sleep(FWD_S)

    def fwdbwd_step(self, batch):
        time.sleep(FWDBWD_S)

    def stage(self, train, test):
        self.n_test = len(test)
        return {}

    def train_epoch(self, epoch):
        time.sleep(EPOCH_S)
        return EpochResult(loss=1.0 / (epoch + 1), accuracy=0.5, samples=1)

    def evaluate(self):
        return EvalResult(accuracy=0.5, loss=1.0, samples=self.n_test)

    def barrier(self, value=None):
        pass


class RaiseRunner(SleepRunner):
    name = "fake-raise"

    def build(self, case, device, seed):
        raise RuntimeError("simulated framework error <with markup>")


class KillRunner(SleepRunner):
    name = "fake-kill"

    def build(self, case, device, seed):
        os.kill(os.getpid(), signal.SIGKILL)


class HangRunner(SleepRunner):
    name = "fake-hang"

    def build(self, case, device, seed):
        time.sleep(600)


class HogRunner(SleepRunner):
    """Allocates (and touches) memory step by step until something stops it."""

    name = "fake-hog"

    def build(self, case, device, seed):
        hoard = []
        for _ in range(200):  # up to 10 GiB, 50 MiB at a time
            hoard.append(np.ones(50 * 2**20 // 8))
            time.sleep(0.02)
        raise AssertionError("the memory cap did not stop this worker")


class MissingRunner(SleepRunner):
    name = "fake-missing"

    @classmethod
    def available(cls) -> Support:
        return Support.no("missing package: imaginaryframework (pip install 'snnbench[imaginary]')")


class PhaseHogRunner(SleepRunner):
    """Touches 200 MiB in its forward pass only: the harness must see it in that phase alone."""

    name = "fake-phase-hog"

    def fwd_step(self, batch):
        block = np.ones(HOG_BYTES // 8)
        return float(block[::4096].sum())


HOG_BYTES = 200 * 2**20


class NoResetRunner(SleepRunner):
    """A device whose memory peak cannot be reset (as JAX's on a GPU): the harness must measure each
    phase again in a worker of its own."""

    name = "fake-no-reset"
    device_memory_source = "a fake device's peak counter"

    def reset_peak_memory(self):
        return False

    def peak_memory_bytes(self):
        return DEVICE_PEAK


DEVICE_PEAK = 123 * 2**20


class KillParentRunner(SleepRunner):
    """Kills the process that started its worker: under the Ray executor that is the Ray task (as
    when a node's task process is lost). Only for Ray tests: locally it would kill the run itself."""

    name = "fake-kill-parent"

    def build(self, case, device, seed):
        os.kill(int(os.environ["SNNBENCH_PARENT_PID"]), signal.SIGKILL)
        time.sleep(60)  # the watchdog ends this worker once its parent is gone


class FillRunner(SleepRunner):
    """With ``SNNBENCH_TEST_FILL=PATH``, fills the file system holding PATH until the disk is full and
    lets the write's ``OSError`` (ENOSPC) escape, as a framework writing a cache or a checkpoint would;
    without it, a sleep runner (so that a resumed run finishes)."""

    name = "fake-fill"

    def build(self, case, device, seed):
        path = os.environ.get("SNNBENCH_TEST_FILL")
        if path:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        super().build(case, device, seed)


class HangGilRunner(SleepRunner):
    """Starts a helper process (as a framework's compile or data workers are), then hangs inside a call
    that never releases the GIL (a backtracking regular expression), so that no Python thread of the
    worker can run: a killed run must take both with it all the same."""

    name = "fake-hang-gil"

    def build(self, case, device, seed):
        import re
        import subprocess

        subprocess.Popen(["sleep", "600"])
        re.fullmatch(r"(a|aa)+b", "a" * 200)  # exponential backtracking, in C, holding the GIL
