"""Learning-rate schedule of the Skywork-13B paper.

Linear warmup to ``lr`` over ``warmup_steps``, cosine decay from ``lr`` to
``min_lr`` until the end of the stage-1 token budget (``decay_steps``), then
constant ``min_lr`` (the rest of stage 1 if it runs long, and all of stage 2).
"""

from __future__ import annotations

import math

import torch


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> float:
    """Learning rate used for optimizer step ``step`` (0-based: the first update uses ``lr_at(0)``)."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= decay_steps:
        return min_lr
    span = max(1, decay_steps - warmup_steps)
    progress = (step - warmup_steps) / span
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def decay_steps_for(stage1_tokens: int, tokens_per_step: int, total_steps: int) -> int:
    """Steps in the stage-1 budget (the whole run when ``stage1_tokens`` is 0)."""
    if stage1_tokens <= 0:
        return total_steps
    return max(1, stage1_tokens // tokens_per_step)


def build_scheduler(optimizer: torch.optim.Optimizer, *, lr: float, min_lr: float, warmup_steps: int,
                    decay_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR (so its position is saved in checkpoints); the optimizer's base lr must be ``lr``."""
    def factor(step: int) -> float:
        return lr_at(step, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, decay_steps=decay_steps) / lr

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
