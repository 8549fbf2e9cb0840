"""``skypile score``: the quality scores of documents, without filtering anything.

Reads JSONL(.gz)/Parquet documents (``id``, ``text``, optional ``lang``; the
shared reader, so bad lines are counted, not fatal), identifies the language
where none is given, and writes one JSON line per document: ``id``, ``lang``,
``perplexity`` (``null`` when unscorable), ``ref_prob`` and ``bucket`` (from the
stored per-language thresholds, ``tail`` for unscorable documents and
languages without thresholds).  The output is written atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from skypile.document import Document


@dataclass
class ScoreReport:
    scored: int = 0
    unreadable: int = 0  # bad lines / rows of the input, counted by the reader
    output: str = ""


class Scorer:
    """LID (when needed) + perplexity + reference classifier + stored bucket, from one models folder."""

    def __init__(self, models_dir: str, score: str = "perplexity"):
        from skypile.filters.language import LanguageId
        from skypile.quality.perplexity import Perplexity, available_langs
        from skypile.quality.ref_classifier import RefProb
        from skypile.quality.thresholds import QualityBucket

        kenlm_dir = str(Path(models_dir) / "kenlm")
        langs = tuple(available_langs(kenlm_dir))
        if not langs:
            raise ValueError(f"no KenLM models in {kenlm_dir} (run `skypile models build`)")
        self.perplexity = Perplexity(model_dir=kenlm_dir, langs=langs)
        self.perplexity.check()
        self.ref_prob = RefProb(model_path=str(Path(models_dir) / "wikiref" / "wikiref.bin"))
        self.ref_prob.check()
        self.bucket = QualityBucket(reference=str(Path(models_dir) / "quality" / "thresholds.json"), score=score,
                                    keep=("head", "middle", "tail"))
        self.langid = LanguageId()

    def __call__(self, doc: Document) -> dict:
        if not doc.lang and doc.text.strip():
            doc.lang, doc.metadata.lang_score = self.langid.predict(doc.text)
        self.ref_prob(self.perplexity(doc))
        self.bucket(doc)
        ppl = doc.metadata.perplexity
        return {"id": doc.id, "lang": doc.lang, "perplexity": ppl if math.isfinite(ppl) else None,
                "ref_prob": round(doc.metadata.ref_prob, 6), "bucket": doc.metadata.bucket}


def score_file(input_path: str, output_path: str, models_dir: str, score: str = "perplexity", progress: bool = True) -> ScoreReport:
    from tqdm import tqdm

    from skypile.io import atomic_output
    from skypile.readers.jsonl import check_document_file, read_documents

    check_document_file(input_path)
    scorer = Scorer(models_dir, score)
    report = ScoreReport(output=output_path)
    with atomic_output(output_path) as out:
        for item in tqdm(read_documents(input_path), desc="score", unit="doc", disable=not progress):
            if not isinstance(item, Document):
                report.unreadable += 1
                continue
            out.write((json.dumps(scorer(item), ensure_ascii=False) + "\n").encode("utf-8"))
            report.scored += 1
    return report
