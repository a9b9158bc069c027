"""fastemb: a Numba-accelerated, streaming word-embedding trainer.

The package loads lazily (PEP 562): `import fastemb` costs no numba, numpy or h5py; each name below is
imported on first use.
"""
__version__ = "0.1.0"

from .errors import FastembError, FileError, OptionError, UnknownWord  # noqa: E402

_LAZY = {
    "train": ("training", "train"),
    "Embeddings": ("embeddings", "Embeddings"),
    "load": ("embeddings", "load"),
    "Vocab": ("vocab", "Vocab"),
    "build_vocab": ("vocab", "build_vocab"),
    "Callback": ("callbacks", "Callback"),
    "StopTraining": ("callbacks", "StopTraining"),
    "LossHistory": ("callbacks", "LossHistory"),
    "FrozenLoss": ("callbacks", "FrozenLoss"),
    "cooccurrences": ("cooc", "cooccurrences"),
    "CorpusOptions": ("corpus", "CorpusOptions"),
    "CoocOptions": ("cooc", "CoocOptions"),
    "SGNSOptions": ("word2vec", "SGNSOptions"),
    "CBOWOptions": ("word2vec", "CBOWOptions"),
    "GloveOptions": ("glove", "GloveOptions"),
    "PPMIOptions": ("ppmi", "PPMIOptions"),
    "NPLMOptions": ("nplm", "NPLMOptions"),
    "LanguageModel": ("nplm", "LanguageModel"),
}
_SUBMODULES = ("eval", "align", "registry", "callbacks", "options", "plot", "formats", "store", "cooc", "vocab",
               "corpus", "word2vec", "glove", "ppmi", "training", "checkpoint", "embeddings", "classify",
               "nplm")

__all__ = ["FastembError", "FileError", "OptionError", "UnknownWord", "__version__", *_LAZY, "eval", "align"]


def __getattr__(name):
    import importlib
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastemb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
