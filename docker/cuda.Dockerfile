# snnbench on an NVIDIA GPU: CUDA builds of torch and jax side by side, sharing one set of CUDA libraries.
#
#   docker build -f docker/cuda.Dockerfile -t snnbench:cuda .
#   docker run --rm --gpus all -v "$PWD/results:/work/results" snnbench:cuda run --suite shd --quick
#
# The host needs the NVIDIA driver and container toolkit; the CUDA user-space libraries come from
# the wheels (nvidia-* packages), so the base is a plain Python image.
ARG BASE_IMAGE=python:3.12-slim-bookworm
FROM ${BASE_IMAGE}

# Defaults: the pair seen working together on an H200 (driver 580): torch 2.11.0+cu130 and jax 0.11.2
# with its CUDA 13 plugin. Change them together: the jax plugin's CUDA major must be torch's.
ARG PYTHON=python3
ARG TORCH_VERSION=2.11.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG JAX_VERSION=0.11.2
ARG JAX_CUDA=cuda13
ARG EXTRAS=all
ARG NO_DEPS_PACKAGES="norse==1.1.0 nirtorch==2.6 spikingjelly==2.0.0 sinabs==3.1.3 rockpool==3.1.0"
ARG USER_ID=1000
# pip's sources, for a build behind a mirror (empty: pip's defaults)
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/snnbench \
    PATH=/opt/snnbench/bin:$PATH

RUN ${PYTHON} -m venv /opt/snnbench

# torch first; then the CUDA libraries it brought are frozen as constraints, so that jax's CUDA
# plugin (and anything after it) resolves against them instead of replacing them with other builds.
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}" \
 && pip freeze | grep -i -E '^(torch|triton|nvidia-[a-z0-9-]+)==' > /opt/snnbench/cuda-pins.txt \
 && cat /opt/snnbench/cuda-pins.txt
RUN pip install -c /opt/snnbench/cuda-pins.txt "jax[${JAX_CUDA}]==${JAX_VERSION}"

COPY pyproject.toml README.md /opt/snnbench-src/
COPY snnbench /opt/snnbench-src/snnbench
COPY suites /opt/snnbench-src/suites
RUN pip install -c /opt/snnbench/cuda-pins.txt "/opt/snnbench-src[${EXTRAS}]" "jax==${JAX_VERSION}" \
 && if [ -n "${NO_DEPS_PACKAGES}" ]; then pip install --no-deps ${NO_DEPS_PACKAGES}; fi \
 && python -c "import torch, jax; assert torch.version.cuda, 'a CPU torch'; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '| jax', jax.__version__)"

RUN useradd --create-home --uid "${USER_ID}" snnbench \
 && mkdir -p /work/results /work/reports \
 && ln -s /opt/snnbench-src/suites /work/suites \
 && chown -R snnbench /work
USER snnbench
WORKDIR /work
ENTRYPOINT ["snnbench"]
CMD ["--help"]
