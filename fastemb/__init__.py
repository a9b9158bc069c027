"""fastemb: a Numba-accelerated, streaming word-embedding trainer."""
__version__ = "0.1.0"

from .errors import FastembError  # noqa: E402
from .vocab import Vocab, build_vocab  # noqa: E402
from .embeddings import Embeddings, load  # noqa: E402
from .train import train  # noqa: E402
from . import eval  # noqa: E402,A004

__all__ = ["FastembError", "Vocab", "build_vocab", "Embeddings", "load", "train", "eval", "__version__"]
