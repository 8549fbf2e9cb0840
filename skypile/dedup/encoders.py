"""Document encoders for semantic dedup: text → a unit vector (float32), pluggable by name.

* ``hashing`` (the default): no model at all: hashed unigram and bigram counts
  of words (CJK: characters), log-scaled, signed, in ``dim`` buckets; a lexical
  vector whose cosine tracks bag-of-words overlap.  CPU, deterministic, nothing
  to build or download.
* ``fasttext``: the mean of a fastText model's word vectors
  (``get_sentence_vector``) from the file ``semantic_dedup.model`` (e.g. a
  skip-gram model trained on the user's own corpus).  Chinese has no spaces, so
  CJK characters are spaced out before encoding.  (Training skip-gram vectors
  in ``skypile models build`` was tried and dropped: the fastText wheel's
  unsupervised training diverges with "Encountered NaN" at random on inputs of
  this size, so the build would not be reproducible.)
* ``sentence-transformers:PATH``: a sentence-transformers model from a local
  directory (GPU users; the package is imported only then and never downloads:
  give a path).

Every encoder returns L2-normalized float32 vectors, so a dot product is a cosine.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Protocol

import numpy as np

_CJK_CHAR = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])")
_TOKENS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\w+")
MAX_CHARS = 20_000  # a document's head is enough to place it; bounds the cost of a huge one


def space_cjk(text: str) -> str:
    """Each CJK character its own word, one line (fastText's input for training and encoding)."""
    return " ".join(_CJK_CHAR.sub(r" \1 ", text).split())


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, text: str) -> np.ndarray: ...


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


class HashingEncoder:
    name = "hashing"

    def __init__(self, dim: int = 256):
        self.dim = dim

    def encode(self, text: str) -> np.ndarray:
        toks = _TOKENS.findall(text[:MAX_CHARS].lower())
        feats = toks + [a + " " + b for a, b in zip(toks, toks[1:])]
        v = np.zeros(self.dim, dtype=np.float64)
        if not feats:
            return v.astype(np.float32)
        h = np.fromiter((zlib.crc32(f.encode("utf-8", "surrogatepass")) for f in feats), dtype=np.uint64, count=len(feats))
        idx = (h % np.uint64(self.dim)).astype(np.int64)
        sign = np.where((h >> np.uint64(31)) & np.uint64(1), -1.0, 1.0)
        np.add.at(v, idx, sign)
        return _unit(np.sign(v) * np.log1p(np.abs(v)))


class FastTextEncoder:
    name = "fasttext"

    def __init__(self, path: str):
        import fasttext

        self.path = path
        self.model = fasttext.load_model(self.path)
        self.dim = self.model.get_dimension()

    def encode(self, text: str) -> np.ndarray:
        return _unit(np.asarray(self.model.get_sentence_vector(space_cjk(text[:MAX_CHARS])), dtype=np.float32))


class SentenceTransformerEncoder:
    name = "sentence-transformers"

    def __init__(self, path: str, device: str | None = None):
        from sentence_transformers import SentenceTransformer  # optional: GPU users install it

        self.model = SentenceTransformer(path, device=device, local_files_only=True)
        self.dim = self.model.get_sentence_embedding_dimension()

    def encode(self, text: str) -> np.ndarray:
        return _unit(np.asarray(self.model.encode(text[:MAX_CHARS], normalize_embeddings=True), dtype=np.float32))


def make_encoder(spec: str, model: str = "") -> Encoder:
    """``hashing`` | ``fasttext`` (the model file ``model``) | ``sentence-transformers:PATH``."""
    if spec == "hashing":
        return HashingEncoder()
    if spec == "fasttext":
        if not model or not os.path.exists(model):
            raise FileNotFoundError(f"semantic_dedup.encoder=fasttext needs semantic_dedup.model, a fastText .bin/.ftz file"
                                    f" (got {model!r})")
        return FastTextEncoder(model)
    if spec.startswith("sentence-transformers:"):
        return SentenceTransformerEncoder(spec.split(":", 1)[1])
    raise ValueError(f"unknown encoder {spec!r} (hashing, fasttext, sentence-transformers:PATH)")

