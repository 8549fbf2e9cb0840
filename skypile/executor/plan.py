"""A recipe cut into passes at its corpus stages.

    read → extract → langid → lang_filter → length → [exact_dedup] → tokenize
    └──────────────── pass 0 ─────────────────────┘   └──── pass 1 ────┘

Pass 0 reads the source splits, runs the per-document stages fused and writes
each split's documents to a part file, computing the next corpus stage's facts
as they stream past.  The corpus stage decides over all facts; pass ``k+1``
streams each part of pass ``k`` once more, applies the verdicts, runs its own
per-document stages and writes a new part.  The last pass's parts are packed
into shards.  Documents never leave their split's files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skypile.corpus import is_corpus_stage


@dataclass
class Pass:
    index: int
    apply: Any = None  # corpus stage whose verdicts open this pass (None for pass 0)
    stages: list[Any] = field(default_factory=list)  # per-document stages, run fused
    facts_for: Any = None  # corpus stage whose facts this pass computes (None for the last pass)
    tokenized: bool = False  # documents carry tokens when this pass writes them
    token_type: str = "uint16"  # their id type in the part files (the tokenizer's: uint32 above 65,536 pieces)

    @property
    def last(self) -> bool:
        return self.facts_for is None

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in ([self.apply] if self.apply else []) + self.stages]


def compile_passes(steps: list[Any]) -> list[Pass]:
    passes: list[Pass] = []
    current = Pass(0)
    tokenized, token_type = False, "uint16"
    for step in steps:
        if is_corpus_stage(step):
            current.facts_for, current.tokenized, current.token_type = step, tokenized, token_type
            passes.append(current)
            current = Pass(len(passes), apply=step)
        else:
            if getattr(step, "produces_tokens", False):
                tokenized, token_type = True, getattr(step, "token_type", "uint16")
            current.stages.append(step)
    current.tokenized, current.token_type = tokenized, token_type
    passes.append(current)
    return passes
