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


def describe(*, lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> str:
    """The schedule in words, for the log."""
    return (f"linear warmup to {lr:.3g} over {warmup_steps} steps, cosine to {min_lr:.3g} at step {decay_steps}, "
            f"then constant {min_lr:.3g}")


def build_scheduler(optimizer: torch.optim.Optimizer, *, lr: float, min_lr: float, warmup_steps: int,
                    decay_steps: int, start_step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR; the optimizer's base lr must be ``lr``.  ``start_step`` > 0 (a resume) sets the
    optimizer's LR to ``lr_at(start_step)`` of *this* schedule: the LR is a function of the step, so
    a resumed run with the same settings continues exactly, and one with other ``steps`` or LR
    settings continues on its new schedule from the first resumed step on."""
    def factor(step: int) -> float:
        return lr_at(step, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, decay_steps=decay_steps) / lr

    for group in optimizer.param_groups:
        group["initial_lr"] = lr  # what LambdaLR scales (it needs it to start past step 0)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor, last_epoch=start_step - 1)
