"""fastemb: a Numba-accelerated, streaming word-embedding trainer."""
__version__ = "0.1.0"

from .errors import FastembError  # noqa: E402
from .vocab import Vocab, build_vocab  # noqa: E402

__all__ = ["FastembError", "Vocab", "build_vocab", "__version__"]
