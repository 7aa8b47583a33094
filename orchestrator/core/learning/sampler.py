"""The project's own random draws for the run stage: hash -> uniform -> normal, gamma, Beta.

Thompson sampling must give the same choice in ``orchestrator simulate`` and in every worker, today and
after an upgrade of Python or numpy: a replay of the same events must send the same messages. So the
draws come from nowhere but a seed text, through arithmetic written here, pinned by
:data:`SAMPLER_VERSION` and by golden-value tests (tests/unit/core/learning/test_sampler.py):

- **uniform**: the ``n``-th uniform of a seed is BLAKE2b-64 of ``v1\\x1f<seed>\\x1f<n>``, its top 53
  bits plus one half, times 2**-53: in (0, 1), never 0 or 1;
- **normal**: Box-Muller on two uniforms (the cosine branch only);
- **gamma(k)**: Marsaglia and Tsang (2000) for k >= 1 (a normal and a uniform per try); for k < 1,
  gamma(k + 1) * U**(1/k);
- **beta(a, b)**: X / (X + Y) with X ~ gamma(a), Y ~ gamma(b).

Only IEEE double arithmetic and ``math.log``/``sqrt``/``cos``/``exp`` are used; a change to any of it is a
new :data:`SAMPLER_VERSION` (and the golden values change with it, on purpose).
"""

from __future__ import annotations

import hashlib
import math

__all__ = ["SAMPLER_VERSION", "Draws", "beta_draws", "uniform_of"]

SAMPLER_VERSION = 1
_SCALE = 2.0**-53
_MAX_TRIES = 64
"""Marsaglia-Tsang accepts ~98 % of tries; after this many (never seen) the mean is returned."""


def uniform_of(seed: str, n: int) -> float:
    """The ``n``-th uniform of ``seed``, in (0, 1)."""
    raw = f"v{SAMPLER_VERSION}\x1f{seed}\x1f{n}".encode()
    word = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")
    return ((word >> 11) + 0.5) * _SCALE


class Draws:
    """A stream of draws from one seed; the same seed gives the same stream, in any process."""

    __slots__ = ("_n", "seed")

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._n = 0

    def uniform(self) -> float:
        u = uniform_of(self.seed, self._n)
        self._n += 1
        return u

    def normal(self) -> float:
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def gamma(self, shape: float) -> float:
        """A draw of Gamma(``shape``, 1); ``shape`` > 0."""
        if not shape > 0.0:
            raise ValueError(f"gamma shape must be > 0, got {shape!r}")
        if shape < 1.0:
            boost: float = self.uniform() ** (1.0 / shape)
            return self.gamma(shape + 1.0) * boost
        d = shape - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        for _ in range(_MAX_TRIES):
            x = self.normal()
            v = 1.0 + c * x
            if v <= 0.0:
                continue
            v = v * v * v
            u = self.uniform()
            if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
                return d * v
        return shape

    def beta(self, a: float, b: float) -> float:
        """A draw of Beta(``a``, ``b``); both > 0."""
        x = self.gamma(a)
        y = self.gamma(b)
        total = x + y
        return a / (a + b) if total <= 0.0 else x / total


def beta_draws(seed: str, params: list[tuple[str, float, float]]) -> dict[str, float]:
    """One Beta draw per named arm, each from its own stream (``<seed>\\x1f<name>``): adding or removing an
    arm does not change the draws of the others."""
    return {name: Draws(f"{seed}\x1f{name}").beta(a, b) for name, a, b in params}
