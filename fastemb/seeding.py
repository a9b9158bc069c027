"""The one way fastemb seeds numpy's random numbers (kernels seed theirs with fastemb.kernels.rng.stream)."""
from __future__ import annotations

import numpy as np


def generator(seed, *stream) -> np.random.Generator:
    """A numpy Generator for `seed` and optional stream keys (an epoch, a purpose tag): the same
    (seed, *stream) always gives the same numbers, different keys give independent ones."""
    return np.random.default_rng([int(seed), *(int(s) for s in stream)])
