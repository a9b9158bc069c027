"""Random number helpers shared by the kernels: splitmix64 to derive independent streams from
(seed, counter), xorshift64* to draw from a stream. State is a uint64 owned by one chunk or block."""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def splitmix(x):
    """(next state, 64 well-mixed bits): seeds a stream from any integer."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def xorshift(state):
    """xorshift64*: (next state, 64 random bits); the state must not be 0."""
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, state * np.uint64(0x2545F4914F6CDD1D)


@njit(cache=True, nogil=True, inline="always")
def uniform(r):
    """A float64 in [0, 1) from 64 random bits."""
    return np.float64(r >> np.uint64(11)) * (1.0 / 9007199254740992.0)
