"""Splits that learn (``adaptive: true``): treated customers go where conversions are more likely.

The split's bucket (the customer's, fixed per journey, step and salt) is looked at first: a bucket in a
**holdout** branch's share stays in the holdout, whatever a model says, so a refit never moves a
customer into or out of the control group. Any other customer draws one Beta(1 + converted,
1 + entered - converted) per non-holdout branch from the model's counts (Beta(1, 1) for a branch the
model has no counts for), seeded from the customer, journey, step and entry number: the highest draw
wins. Each branch thus gets the customers in proportion to its chance of converting best (Thompson
sampling). Without a model, or a model without counts for this split, the fixed shares apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from orchestrator.core.learning.model import BranchStats
from orchestrator.core.learning.sampler import beta_draws

__all__ = ["adaptive_branch"]


class _Branch(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def basis_points(self) -> int: ...
    @property
    def holdout(self) -> bool: ...


B = TypeVar("B", bound=_Branch)


def adaptive_branch(
    branches: Sequence[B], bucket: int, stats: dict[str, BranchStats], seed: str
) -> tuple[B, dict[str, float] | None]:
    """The branch for a customer in ``bucket``, and the draws (None when the fixed shares decided)."""
    edge = 0
    by_bucket = branches[-1]
    for branch in branches:
        edge += branch.basis_points
        if bucket < edge:
            by_bucket = branch
            break
    treated = [b for b in branches if not b.holdout]
    if by_bucket.holdout or not stats or len(treated) < 2:
        return by_bucket, None
    params = []
    for b in treated:
        s = stats.get(b.name)
        entered, converted = (s.entered, s.converted) if s is not None else (0, 0)
        params.append((b.name, 1.0 + converted, 1.0 + entered - converted))
    draws = beta_draws(seed, params)
    best = treated[0]
    for b in treated[1:]:
        if draws[b.name] > draws[best.name]:
            best = b
    return best, draws
