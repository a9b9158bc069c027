"""Numba kernels: pure array code (`@njit`), one module per algorithm, plus the shared RNG (`rng`).

Kernels take only arrays and scalars and check nothing: the modules in `fastemb.models` and the core validate
every input before calling them.
"""
