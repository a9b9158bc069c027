"""The algorithm registry: `fastemb.train` and `fastemb train` know algorithms only through it.

An algorithm module declares, without importing its kernels (so `fastemb --help` stays light):

    ALGORITHMS = (Algorithm(name="sgns", options=SGNSOptions, trainer=Word2VecTrainer, memory=memory_bytes,
                            input="corpus", summary="skip-gram with negative sampling"),)

and is listed once in MODULES below. `options` is a frozen `Options` class (defaults, help, checks);
`trainer(options, data, seed=, state=, arrays=)` builds the model on its input ("corpus": an
EncodedCorpus; "cooc": a CoocData); `memory(options, n_words, nnz)` estimates the model's bytes.
An iterative trainer provides `array_specs`, `arrays`, `run_epoch`, `vectors`, `reference_loss`,
`work_per_epoch`, `unit` and `result`; a one-shot trainer (`iterative=False`) provides `fit` and `result`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .errors import OptionError

# One line per algorithm module.
MODULES = (
    "fastemb.word2vec",
    "fastemb.glove",
    "fastemb.ppmi",
)


@dataclass(frozen=True)
class Algorithm:
    name: str
    options: type
    trainer: type
    memory: Callable
    input: str = "corpus"           # "corpus" (token ids) or "cooc" (a co-occurrence matrix)
    iterative: bool = True          # has epochs: shares the epoch loop, callbacks and checkpoints
    summary: str = ""


_ALGORITHMS: dict = {}


def _load():
    if not _ALGORITHMS:
        found = {}
        for module in MODULES:
            for a in importlib.import_module(module).ALGORITHMS:
                if a.input not in ("corpus", "cooc"):
                    raise TypeError(f"{a.name}: input must be 'corpus' or 'cooc'")
                found[a.name] = a
        _check_one_meaning(found.values())
        _ALGORITHMS.update(found)
    return _ALGORITHMS


def _check_one_meaning(algorithms):
    """A parameter name has one meaning: every class that has it shares its Spec."""
    from .corpus import CorpusOptions
    seen = {name: spec for name, (_, spec, _) in CorpusOptions.specs().items()}
    for a in algorithms:
        for name, (_, spec, _) in a.options.specs().items():
            if seen.setdefault(name, spec) is not spec:
                raise TypeError(f"option {name!r} of {a.name} has another meaning elsewhere")


def names() -> tuple:
    return tuple(_load())


def all_algorithms() -> tuple:
    return tuple(_load().values())


def get(name) -> Algorithm:
    algorithms = _load()
    if name not in algorithms:
        raise OptionError("algo", f"must be one of {', '.join(algorithms)} (got {name!r})")
    return algorithms[name]


def owners(option_name) -> list:
    """The algorithms that have an option of this name."""
    return [a.name for a in all_algorithms() if option_name in a.options.specs()]
