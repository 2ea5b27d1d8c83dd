# Qwen3-TTS Wyoming server: the Home Assistant add-on image, also usable on its own:
#   docker build -t qwen3-tts .
#   docker run -p 10200:10200 -v qwen3-tts-data:/data qwen3-tts
#
# The base is named here, not taken from BUILD_FROM: a Supervisor without build.yaml
# (deprecated) would pass an Alpine BUILD_FROM, and this image needs Debian (glibc wheels
# for torch).  It is multi-arch (amd64, aarch64) and brings s6-overlay v3 and bashio.
ARG BASE_IMAGE=ghcr.io/home-assistant/base-debian:trixie
FROM ${BASE_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ARG BUILD_ARCH=amd64
ARG BUILD_VERSION=0.2.6
# torch, a CPU build that imports on the image's architecture:
# - amd64: TORCH_VERSION from the CPU wheel index (PyPI's x86-64 wheel is a multi-GB CUDA
#   build).
# - aarch64 (Raspberry Pi 4 and 5): TORCH_VERSION from the CPU wheel index too, which has CPU
#   aarch64 builds of the newer releases (the SIGILL of 2.10 on ARMv8.0 is fixed from 2.11
#   on).  PyPI is no substitute there: its aarch64 wheels of 2.11 and newer are CUDA builds
#   that do not import without several GB of CUDA wheels, and its 2.10.0 dies with SIGILL on
#   ARMv8.0 (Pi 4).  Built with --build-arg TORCH_INDEX_URL= (no index), an aarch64 image
#   takes TORCH_AARCH64_PYPI_VERSION from PyPI: the newest CPU-only aarch64 wheel there that
#   runs on both Pis.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_AARCH64_PYPI_VERSION=2.9.1
ARG QWEN_TTS_VERSION=0.1.1

ENV \
    PATH="/opt/qwen3-tts/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    S6_CMD_WAIT_FOR_SERVICES_MAXTIME=0

# 1. Python, netcat (for the health check and the discovery service) and a C compiler: the
#    decode loop's fused kernels (wyoming_qwen3_tts/kernels.c) are compiled at start for the
#    CPU the add-on runs on (-march=native), in under a second; without them it is slower.
# 2. torch, CPU build only (see TORCH_VERSION above), checked after the install below.
# 3. The Qwen3-TTS model code without its declared dependencies (gradio, torchaudio with
#    its own torch, sox, onnxruntime: only the unused 25 Hz tokenizer needs them).
# (4. below: this package and its real dependencies, see setup.cfg.)
# hadolint ignore=DL3008
RUN \
    apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        gcc \
        libc6-dev \
        netcat-openbsd \
        python3 \
        python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/qwen3-tts/venv \
    && if [ -n "${TORCH_INDEX_URL}" ]; then \
           pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
       elif [ "${BUILD_ARCH}" = aarch64 ]; then \
           pip install "torch==${TORCH_AARCH64_PYPI_VERSION}"; \
       else \
           echo "TORCH_INDEX_URL is needed on ${BUILD_ARCH}" >&2; exit 1; \
       fi \
    && pip install --no-deps "qwen-tts==${QWEN_TTS_VERSION}"

# 4. This package, from the repository itself (.dockerignore keeps venvs and caches out).
WORKDIR /usr/src/wyoming-qwen3-tts
COPY . .
RUN \
    pip install . \
    && python3 -c "import torch; assert not torch.version.cuda, torch.version.cuda" \
    && python3 -m wyoming_qwen3_tts --version

# s6-overlay services: the server (options -> flags), its finish, and the discovery.
COPY addon/rootfs /
WORKDIR /

# A first start downloads the model (a few GB) and loads it: give it time.  The server
# answers `describe` while it loads, so a healthy reply means the server is up.
# (Shell form on purpose, as in the official Wyoming add-ons: it is a pipeline.)
# hadolint ignore=DL3025
HEALTHCHECK --start-period=30m --interval=30s --timeout=10s \
    CMD echo '{ "type": "describe" }' \
        | nc -w 1 localhost 10200 \
        | grep -i "qwen3" > /dev/null \
        || exit 1

EXPOSE 10200/tcp 10201/tcp

LABEL \
    io.hass.name="Qwen3-TTS" \
    io.hass.description="Text-to-speech with Qwen3-TTS over the Wyoming protocol, on the CPU" \
    io.hass.arch="${BUILD_ARCH}" \
    io.hass.type="addon" \
    io.hass.version="${BUILD_VERSION}" \
    org.opencontainers.image.title="Qwen3-TTS" \
    org.opencontainers.image.description="Wyoming protocol server for Qwen3-TTS, streaming on CPUs" \
    org.opencontainers.image.licenses="Apache-2.0" \
    org.opencontainers.image.version="${BUILD_VERSION}"
