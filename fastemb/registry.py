"""The algorithm registry: `fastemb.train` and `fastemb train` know algorithms only through it.

An algorithm module declares, without importing its kernels (so `fastemb --help` stays light):

    ALGORITHMS = (Algorithm(name="sgns", options=SGNSOptions, trainer=Word2VecTrainer, memory=memory_bytes,
                            input="corpus", summary="skip-gram with negative sampling"),)

and is listed once in MODULES below. `options` is a frozen `Options` class (defaults, help, checks);
`trainer(options, data, seed=, threads=, state=, arrays=)` builds the model on its input ("corpus": an
EncodedCorpus; "cooc": a training.CoocData, and then the options class has a nested `cooc` CoocOptions
field, what counting a corpus for it uses); `memory(options, n_words, nnz)` estimates the model's bytes.
An iterative trainer provides `array_specs(options, words)` (name -> (shape, dtype[, "optional"]) of what a checkpoint
holds for the vocabulary `words`), `arrays()`, `run_epoch(state)` (a generator of loop.Step, one per kernel call, resuming at
state.block), `vectors()`, `reference_loss()` (the untrained model's, for the divergence guard),
`work_per_epoch`, `unit` ("words" or another work unit), `advice` (the option to lower when training
diverges) and `result()` (a dict of Embeddings fields); a one-shot trainer (`iterative=False`) provides
`fit()` and `result()`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from fastemb.errors import OptionError

# One line per algorithm module.
MODULES = (
    "fastemb.models.word2vec",
    "fastemb.models.glove",
    "fastemb.models.ppmi",
    "fastemb.models.nplm",
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
    output_bytes: Callable | None = None   # (options, n_words) -> bytes of the saved model; default 2·V·d·4
    # continued training: (options, init Embeddings, merged Vocab, seed) -> the trainer's starting arrays,
    # the init's words first (in its order), then the words the new corpus added
    init_arrays: Callable | None = None

    def saved_size(self, options, n_words) -> int:
        """About how many bytes the saved model takes (vectors, context vectors, vocabulary)."""
        if self.output_bytes is not None:
            return int(self.output_bytes(options, n_words))
        return 2 * n_words * options.dim * 4 + 32 * n_words


_ALGORITHMS: dict = {}


def _load():
    if not _ALGORITHMS:
        found = {}
        for module in MODULES:
            for a in importlib.import_module(module).ALGORITHMS:
                if a.input not in ("corpus", "cooc"):
                    raise TypeError(f"{a.name}: input must be 'corpus' or 'cooc'")
                if a.input == "cooc" and not hasattr(a.options(), "cooc"):
                    raise TypeError(f"{a.name}: a co-occurrence algorithm's options need a `cooc` field")
                found[a.name] = a
        _check_one_meaning(found.values())
        _ALGORITHMS.update(found)
    return _ALGORITHMS


def _check_one_meaning(algorithms):
    """A parameter name has one meaning: every class that has it shares its Spec."""
    from fastemb.corpus import CorpusOptions
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
