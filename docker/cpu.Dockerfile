# snnbench on a CPU: the reference and every framework adapter that installs, with the CPU build of torch.
#
#   docker build -f docker/cpu.Dockerfile -t snnbench:cpu .
#   docker run --rm -v "$PWD/results:/work/results" snnbench:cpu run --suite shd --quick
#
# Results land in /work/results (mount a directory there) and reports in /work/reports.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Versions: torch is pinned here (its CPU build comes from TORCH_INDEX_URL; set it empty to take
# torch from pip's own configuration, e.g. a local wheel directory); everything else is pinned by
# docker/constraints-cpu.txt. The four --no-deps packages declare requirements that would pull a
# CUDA torch, torchvision or SynSense's hardware kit; their real dependencies come from the extras.
ARG PYTHON=python3
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG EXTRAS=all
ARG NO_DEPS_PACKAGES="norse==1.1.0 nirtorch==2.6 spikingjelly==2.0.0 sinabs==3.1.3 rockpool==3.1.0"
ARG USER_ID=1000
# pip's sources, for a build behind a mirror or offline with local wheels (empty: pip's defaults)
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

# torch first, in its own layer: the largest download, and what the other packages must not replace.
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}"

COPY docker/constraints-cpu.txt /opt/snnbench-src/docker/
COPY pyproject.toml README.md /opt/snnbench-src/
COPY snnbench /opt/snnbench-src/snnbench
COPY suites /opt/snnbench-src/suites
RUN pip install -c /opt/snnbench-src/docker/constraints-cpu.txt "/opt/snnbench-src[${EXTRAS}]" \
 && if [ -n "${NO_DEPS_PACKAGES}" ]; then pip install --no-deps ${NO_DEPS_PACKAGES}; fi \
 && python -c "import torch; assert not torch.version.cuda, torch.__version__; print('torch', torch.__version__)" \
 && snnbench list runners

# Not root at run time. /work is where runs write results/ and reports/; suites come with the image.
RUN useradd --create-home --uid "${USER_ID}" snnbench \
 && mkdir -p /work/results /work/reports \
 && ln -s /opt/snnbench-src/suites /work/suites \
 && chown -R snnbench /work
USER snnbench
WORKDIR /work
ENTRYPOINT ["snnbench"]
CMD ["--help"]
