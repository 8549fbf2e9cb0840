"""Append pieces to a trained SentencePiece BPE model by editing its protobuf.

This is how Skywork (and Chinese-LLaMA before it) grew LLaMA's 32k vocabulary
for Chinese: the model file is a ``ModelProto``; new pieces go at the end of
its ``pieces`` list, so every existing id keeps its piece, score and type, and
any id sequence of the base model decodes to the same text under the extended
one.

A BPE model only ever produces a piece by merging two adjacent pieces that are
already in the vocabulary, highest score first.  So an appended piece of several
characters is added only when it is *reachable* (it splits into two pieces the
vocabulary already has), and appended pieces get strictly decreasing scores
below every existing score: a piece's parts always merge before the piece
itself, and no two pieces tie (which keeps ``transformers``' score-ordered merge
list equivalent to SentencePiece's own encoder).  Callers order the pieces
(shorter first) so that longer words find their parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from skypile import io

NORMAL = 1  # ModelProto.SentencePiece.Type.NORMAL


def model_proto():
    """The ``ModelProto`` message class that ships with ``sentencepiece``."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except Exception as exc:  # noqa: BLE001 - a protobuf runtime too old for the generated module
        raise RuntimeError(
            f"sentencepiece's protobuf module does not load ({exc}); install a sentencepiece whose generated "
            "code matches the installed protobuf (setup.cfg pins a working pair)"
        ) from None
    return sentencepiece_model_pb2.ModelProto


def parse_model(model_bytes: bytes):
    from google.protobuf.message import DecodeError

    proto = model_proto()()
    try:
        proto.ParseFromString(model_bytes)
    except DecodeError as exc:
        raise ValueError(f"not a SentencePiece model ({exc})") from None
    if not proto.pieces:
        raise ValueError("not a SentencePiece model (no pieces)")
    return proto


@dataclass
class Extension:
    """What :func:`extend_model` did: the new model and which pieces it took or left out."""

    model: bytes
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already in the vocabulary: left as they are
    unreachable: list[str] = field(default_factory=list)  # no split into two known pieces: BPE could never emit them

    @property
    def vocab_size(self) -> int:
        return len(parse_model(self.model).pieces)


def reachable(piece: str, vocab: set[str]) -> bool:
    """Whether BPE can build ``piece`` by one merge of two pieces already in ``vocab``."""
    return len(piece) == 1 or any(piece[:i] in vocab and piece[i:] in vocab for i in range(1, len(piece)))


def extend_model(model_bytes: bytes, pieces: Iterable[str], *, limit: int | None = None) -> Extension:
    """Append ``pieces`` (in the given order) as NORMAL pieces; stop once the vocabulary has ``limit`` pieces.

    Empty pieces, pieces already present and pieces that cannot be reached are
    skipped and reported, never silently dropped.
    """
    proto = parse_model(model_bytes)
    if proto.trainer_spec.model_type != proto.trainer_spec.BPE:
        raise ValueError("only BPE models can be extended this way (their pieces are merges)")
    vocab = {p.piece for p in proto.pieces}
    score = min((p.score for p in proto.pieces), default=0.0)
    ext = Extension(b"")
    for piece in pieces:
        if limit is not None and len(proto.pieces) >= limit:
            break
        if not piece or any(ch.isspace() for ch in piece):
            ext.unreachable.append(piece)
            continue
        if piece in vocab:
            ext.present.append(piece)
            continue
        if not reachable(piece, vocab):
            ext.unreachable.append(piece)
            continue
        score -= 1.0
        new = proto.pieces.add()
        new.piece, new.score, new.type = piece, score, NORMAL
        vocab.add(piece)
        ext.added.append(piece)
    ext.model = proto.SerializeToString()
    return ext


def read_pieces(path: str) -> list[str]:
    """A words file: one piece per line (anything after a tab or space, e.g. a count, is ignored).

    Pieces are returned shortest first (stable within a length), so that a word's
    parts are in the vocabulary before the word itself is considered.
    """
    words = []
    for line in io.read_bytes(path).decode("utf-8").splitlines():
        word = line.split("\t")[0].split(" ")[0].strip()
        if word:
            words.append(word)
    return sorted(words, key=len)


def extend_file(base: str, words_path: str, out_dir: str, name: str = "skypile-sp") -> tuple[str, Extension]:
    """``skypile tokenizer extend``: base model + words file → ``out_dir/<name>.model`` (written atomically)."""
    ext = extend_model(io.read_bytes(base), read_pieces(words_path))
    out = io.join(out_dir, f"{name}.model")
    io.atomic_write_bytes(out, ext.model)
    return out, ext
