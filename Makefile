# Two entry points, each doing its own set-up in ./.venv:
#   make run    install every framework that installs here, run the SHD suite across all of them
#               (snnbench run --suite shd) and write the HTML report
#   make test   install everything the tests need and run pytest (correctness; the timing-ratio checks
#               are `make bench-check`)
# On a machine whose NVIDIA driver reports a GPU both take the CUDA stack (CUDA torch and CUDA jax, what
# `make install-gpu` installs); elsewhere the CPU build of torch pinned here (an unpinned torch would pull
# a multi-GB CUDA build). GPU=1 / GPU= forces either path.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: run test publish install-gpu bench bench-check bench-compare bench-baseline install-run install-test clean

ifeq ($(origin GPU),undefined)
GPU := $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo 1)
endif

# Speed baselines are kept per machine class (architecture, cores, GPU model): snnbench computes it, once,
# for publish, the benchmarks and here (evaluated when a bench target runs, after the install).
BENCH_STORE = results/baselines/$(shell $(BIN)/snnbench env --machine-class)
BENCH_FAIL ?= median:30%
# -m '': every benchmark, the ratio checks (marked bench_check, left out of `make test`) included
BENCH = $(BIN)/python -m pytest tests/benchmarks -m '' --benchmark-enable --benchmark-storage=file://$(BENCH_STORE) \
        --benchmark-columns=min,median,iqr,rounds -s -q

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[jax,report]'
	touch $@

# Norse 1.1 declares torchvision only for its vision examples; without --no-deps pip would replace the
# torch build with another to satisfy it. SpikingJelly 2.0 declares torchvision and torchaudio (same
# problem), Sinabs 3.1 samna and nir<=1.0.4, Rockpool 3.1 nothing it needs beyond numpy/scipy: all
# four --no-deps, their real dependencies come from the extras.
NODEPS = 'norse==1.1.0' 'nirtorch>=2' 'spikingjelly==2.0.0' 'sinabs==3.1.3' 'rockpool==3.1.0'

# The GPU stack: CUDA torch first, its CUDA libraries frozen as constraints, then CUDA jax and every
# framework under them, so that neither replaces the other's (docs: containers and GPU).
TORCH_GPU ?= torch==2.11.0
TORCH_GPU_INDEX ?= https://download.pytorch.org/whl/cu130
define install_gpu_stack
	$(BIN)/pip install -q '$(TORCH_GPU)' --index-url $(TORCH_GPU_INDEX)
	$(BIN)/pip freeze | grep -i -E '^(torch|triton|nvidia-[a-z0-9-]+)==' > $(VENV)/cuda-pins.txt
	$(BIN)/pip install -q -c $(VENV)/cuda-pins.txt -e '.[all,gpu,dev]'
	$(BIN)/pip install -q --no-deps $(NODEPS)
	$(BIN)/python -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), '| jax', jax.__version__, jax.devices())"
endef

# Every framework adapter's package: the GPU stack where there is a GPU, else the CPU torch first, so
# that nothing pulls another torch build.
ifeq ($(GPU),1)
$(VENV)/.frameworks: $(BIN)/python pyproject.toml
	$(install_gpu_stack)
	touch $(VENV)/.run-deps $@
else
$(VENV)/.frameworks: $(VENV)/.run-deps
	$(BIN)/pip install -q '$(TORCH)'
	$(BIN)/pip install -q -e '.[all]'
	$(BIN)/pip install -q --no-deps $(NODEPS)
	touch $@
endif

$(VENV)/.test-deps: $(VENV)/.frameworks
	$(BIN)/pip install -q $(if $(GPU),-c $(VENV)/cuda-pins.txt) -e '.[all,ray,dev]'
	# NeuroBench, for the efficiency metrics' cross-check: it declares torchaudio (a CUDA torch would come
	# with it) and dataset extras; its metrics need only torch, snntorch and tqdm, installed above.
	$(BIN)/pip install -q --no-deps 'neurobench==2.3.0'
	touch $@

# The GPU stack on demand (`make run` and `make test` take it by themselves where nvidia-smi reports
# a GPU). Not run by CI (no GPU there).
install-gpu: $(BIN)/python
	$(install_gpu_stack)
	touch $(VENV)/.run-deps $(VENV)/.frameworks $(VENV)/.test-deps

install-run: $(VENV)/.frameworks
install-test: $(VENV)/.test-deps

# The headline case by default: the recurrent case (shd-rec-h128) adds about 30 minutes on a 2-core
# CPU (CASES='*' runs both).
CASES ?= shd-h128-b128
run: $(VENV)/.frameworks
	$(BIN)/snnbench run --suite shd --cases '$(CASES)' $(ARGS)

# The tests in two worker processes (pytest-xdist): a 2-core machine runs them in 19 minutes instead of
# about 25. TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= 2
test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(ARGS)

# Published results: the profile's suites into results/<machine class>/, the page into
# reports/<machine class>.html; the CPU profile also refreshes the README's headline table.
PROFILE ?= cpu
publish: $(VENV)/.frameworks
	$(BIN)/snnbench publish --profile $(PROFILE) $(if $(filter cpu,$(PROFILE)),--readme README.md) $(ARGS)

# Time snnbench's own speed (prints a table and the ratio guard's figure).
bench: $(VENV)/.test-deps
	$(BENCH) $(ARGS)

# The timing-ratio checks (ratio guard, adapters against their frameworks' own loops, compiled against eager,
# step consistency): CI runs them as a step of their own after `make test`. Each prints its ratio and
# measures once more before it fails, so one busy moment on a shared machine is not a failure.
bench-check: $(VENV)/.test-deps
	$(BIN)/python -m pytest tests/benchmarks -m bench_check -s -q $(ARGS)

# Compare against the newest stored baseline of this machine class; fails past BENCH_FAIL.
bench-compare: $(VENV)/.test-deps
	$(BENCH) --benchmark-compare --benchmark-compare-fail=$(BENCH_FAIL) $(ARGS)

# Deliberately record a new baseline (and the ratio guard's bound) for this machine class.
bench-baseline: $(VENV)/.test-deps
	SNNBENCH_UPDATE_RATIO=1 $(BENCH) --benchmark-save=baseline $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
