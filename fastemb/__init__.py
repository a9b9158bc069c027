"""fastemb: a Numba-accelerated, streaming word-embedding trainer.

The package loads lazily (PEP 562): `import fastemb` costs no numba, numpy or h5py; each name below is
imported on first use.
"""
__version__ = "0.1.0"

from fastemb.errors import FastembError, FileError, OptionError, UnknownWord  # noqa: E402

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
    "SGNSOptions": ("models.word2vec", "SGNSOptions"),
    "CBOWOptions": ("models.word2vec", "CBOWOptions"),
    "GloveOptions": ("models.glove", "GloveOptions"),
    "PPMIOptions": ("models.ppmi", "PPMIOptions"),
    "NPLMOptions": ("models.nplm", "NPLMOptions"),
    "LanguageModel": ("models.nplm", "LanguageModel"),
    "phrases": ("phrasing", "phrases"),
    "PhraseTable": ("phrasing", "PhraseTable"),
    "PhrasesOptions": ("phrasing", "PhrasesOptions"),
}
_SUBMODULES = {name: name for name in ("eval", "align", "registry", "callbacks", "options", "plot", "formats", "store",
                                        "cooc", "vocab", "corpus", "training", "checkpoint", "embeddings", "kernels", "datasets",
                                        "models", "cli", "dask")}
_SUBMODULES.update({name: f"models.{name}" for name in ("word2vec", "glove", "ppmi", "nplm", "classify")})

__all__ = ["FastembError", "FileError", "OptionError", "UnknownWord", "__version__", *_LAZY, "eval", "align"]


def __getattr__(name):
    import importlib
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{_SUBMODULES[name]}", __name__)
    raise AttributeError(f"module 'fastemb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
