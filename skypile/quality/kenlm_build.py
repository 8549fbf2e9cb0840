"""Build the per-language KenLM 5-grams (recipe kind ``kenlm``) the way CCNet does.

Per language: the Wikipedia articles minus a seeded held-out share are
normalized paragraph by paragraph; a small SentencePiece *unigram* model is
trained on that text (CCNet trains one per language on Wikipedia too; the
project's BPE tokenizer is not used, so the LM does not change when the
tokenizer does); the pieces are fed to ``lmplz -o 5 --skip_symbols``; and
``build_binary`` turns the ARPA file into the binary the scorer memory-maps.

``lmplz`` and ``build_binary`` are compiled from the ``kenlm`` sdist by
``scripts/build_kenlm.sh`` (run by ``scripts/install.sh``); :func:`kenlm_tool`
finds them on ``PATH``, in the virtualenv, or in the build cache.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from skypile.quality.corpora import chunks, is_held_out, wiki_articles
from skypile.quality.text import paragraphs


class KenLMMissing(RuntimeError):
    """lmplz / build_binary are not installed."""


def kenlm_tool(name: str) -> str:
    """Path of KenLM's ``lmplz`` or ``build_binary``, or a clear error saying how to get it."""
    candidates = [os.environ.get("SKYPILE_KENLM_BIN", ""), os.path.join(sys.prefix, "bin"),
                  os.path.expanduser("~/.cache/skypile/kenlm/0.3.0/bin")]
    for d in candidates:
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    found = shutil.which(name)
    if found:
        return found
    raise KenLMMissing(
        f"KenLM's {name} is not installed: run `bash scripts/build_kenlm.sh` (it compiles lmplz and build_binary "
        "from the kenlm sdist; needs a C++ compiler, cmake and Debian's boost/eigen/zlib/bz2/lzma dev packages), "
        "or set SKYPILE_KENLM_BIN to a folder holding them"
    )


def train_sentencepiece(text_file: str, out_path: str, vocab_size: int, lang: str) -> str:
    """A small unigram model over the normalized training text, written atomically to ``out_path``.

    Deterministic: all sentences, no shuffling, one thread, and the text is fed through an
    iterator so no temporary path ends up inside the model file.
    """
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    with open(text_file, encoding="utf-8") as f:
        spm.SentencePieceTrainer.train(
            sentence_iterator=(line.rstrip("\n") for line in f),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=0.9995 if lang == "zh" else 1.0,
            hard_vocab_limit=False,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.getvalue())
    os.replace(tmp, out_path)
    return out_path


def _run(cmd: list[str], stdin_path: str | None = None, stdout_path: str | None = None) -> None:
    with open(stdin_path or os.devnull, "rb") as fin, open(stdout_path or os.devnull, "wb") as fout:
        proc = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")


def train_kenlm(pieces_file: str, out_bin: str, order: int, scratch: str) -> None:
    """``lmplz`` (modified Kneser-Ney, ``--skip_symbols``) then ``build_binary``; the binary lands atomically."""
    arpa = os.path.join(scratch, "lm.arpa")
    _run([kenlm_tool("lmplz"), "-o", str(order), "--skip_symbols", "--discount_fallback", "-S", "10%", "-T", scratch],
         stdin_path=pieces_file, stdout_path=arpa)
    tmp = out_bin + ".tmp"
    _run([kenlm_tool("build_binary"), arpa, tmp])
    os.replace(tmp, out_bin)
    os.remove(arpa)


def build_kenlm(recipe: dict, data_dir: Path, out_dir: Path, progress: bool = True) -> dict:
    """Build ``<out>/<lang>.arpa.bin`` + ``<lang>.sp.model`` per language; returns the manifest entry."""
    from tqdm import tqdm

    from skypile.quality.perplexity import LanguageModel

    target = out_dir / recipe["output"]
    target.mkdir(parents=True, exist_ok=True)
    seed, held = int(recipe.get("seed", 0)), float(recipe.get("held_out", 0.1))
    order = int(recipe.get("order", 5))
    files, data, metrics = [], {}, {}
    for lang in tqdm(recipe["langs"], desc="kenlm", disable=not progress):
        articles = wiki_articles(data_dir, lang)
        train = [a for a in articles if not is_held_out(a.key, seed, held)]
        test = [a for a in articles if is_held_out(a.key, seed, held)]
        with tempfile.TemporaryDirectory(dir=target) as scratch:
            norm = os.path.join(scratch, "norm.txt")
            with open(norm, "w", encoding="utf-8") as f:
                for a in train:
                    for p in paragraphs(a.text):
                        f.write(p + "\n")
            train_sentencepiece(norm, str(target / f"{lang}.sp.model"), int(recipe["sp_vocab_size"][lang]), lang)
            import sentencepiece as spm

            sp = spm.SentencePieceProcessor(model_file=str(target / f"{lang}.sp.model"))
            pieces = os.path.join(scratch, "pieces.txt")
            n_tokens = 0
            with open(norm, encoding="utf-8") as fin, open(pieces, "w", encoding="utf-8") as fout:
                for line in fin:
                    toks = sp.encode(line.rstrip("\n"), out_type=str)
                    n_tokens += len(toks)
                    fout.write(" ".join(toks) + "\n")
            train_kenlm(pieces, str(target / f"{lang}.arpa.bin"), order, scratch)
        lm = LanguageModel(str(target), lang)
        held_ppl = [lm.perplexity(c.text) for a in test for c in chunks(a, 2000)]
        data[lang] = {
            "source": recipe["sources"][lang],
            "articles_train": len(train),
            "articles_held_out": len(test),
            "training_tokens": n_tokens,
        }
        metrics[lang] = {"held_out_wiki_perplexity_median": round(statistics.median(held_ppl), 1) if held_ppl else None}
        files += [f"{lang}.arpa.bin", f"{lang}.sp.model"]
    return {
        "kind": "kenlm",
        "path": str(target),
        "files": files,
        "data": data,
        "parameters": {"order": order, "seed": seed, "held_out": held, "sp_vocab_size": recipe["sp_vocab_size"],
                       "lmplz": "-o %d --skip_symbols --discount_fallback" % order, "normalization": "ccnet"},
        "metrics": metrics,
    }
