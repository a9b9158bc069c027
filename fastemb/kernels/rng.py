"""Random number helpers shared by the kernels: `stream(seed, counter)` is the one way a kernel seeds the RNG
of a chunk, block or sentence (splitmix64 of seed·C + counter, so streams of neighbouring counters are
independent); xorshift64* draws from a stream. State is a uint64 owned by one chunk or block. Python code
seeds numpy with fastemb.seeding.generator."""
import numpy as np
from numba import njit, prange


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


@njit(cache=True, nogil=True, inline="always")
def stream(seed, counter):
    """The xorshift state (never 0) of stream `counter` of `seed`: splitmix64's mixed output, so neighbouring
    counters start far apart. (Until 2026-12-07 this took splitmix's incremented input instead: neighbouring
    streams started one apart and their first draws were correlated, which a uniformity test of GloVe's
    parallel shuffle caught.)"""
    _, z = splitmix(np.uint64(seed) * np.uint64(0xD1B54A32D192ED03) + np.uint64(counter))
    return z | np.uint64(1)


# Initialisation draws from streams of seed + 2^40: a run's training streams (seed + epoch * 1_000_003 with a
# 32-bit seed) stay below it, so no chunk of training replays an initial row's numbers.
INIT_STREAMS = 1 << 40


@njit(cache=True, nogil=True, parallel=True)
def uniform_rows(out, scale, seed):
    """out[r] = (uniform [0, 1) - 0.5) * scale, row r drawn from stream(seed + INIT_STREAMS, r): the same
    numbers on any number of threads, and each row's whatever the matrix's size (24-bit floats)."""
    for r in prange(out.shape[0]):
        state = stream(np.uint64(seed) + np.uint64(INIT_STREAMS), r)
        row = out[r]
        for k in range(row.shape[0]):
            state, x = xorshift(state)
            row[k] = (np.float32(x >> np.uint64(40)) * np.float32(1.0 / 16777216.0) - np.float32(0.5)) * scale
