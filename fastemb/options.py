"""Declared options: frozen dataclasses whose fields carry their default, help text and check.

Each concern owns one options class in its own module (corpus reading: `corpus.CorpusOptions`,
co-occurrence: `cooc.CoocOptions`, each algorithm: `word2vec.SGNSOptions` and so on). A `Spec` is the one
meaning of a parameter name: its type, help, check and CLI flags. Classes that share a name share its
Spec (the registry checks this), so `window` is described and checked in one place and means the same
thing everywhere. Construction validates every field, before any file is opened:

    >>> SGNSOptions(dim=0)
    OptionError: dim must be at least 1 (got 0)

This module imports neither numba nor numpy: the CLI builds its options from these classes without
loading the kernels.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from fastemb.errors import OptionError, param

_SPEC = "fastemb_spec"
_NESTED = "fastemb_nested"


class Spec:
    """One parameter's meaning. `kind` is int, float, bool or str; `check(value)` returns a problem
    ("must be at least 1") or None; `optional` admits None (meaning "derived": see the help text);
    `flags` are CLI declarations when they are not simply --name (e.g. "--symmetric/--one-sided");
    `on_resume` says whether a resumed run may change it ("free") or must keep it ("fixed")."""

    def __init__(self, kind, help, *, check: Callable | None = None, choices=None, optional=False,
                 flags=None, metavar=None, on_resume="fixed", none_means=None):
        self.kind, self.help, self.check, self.choices = kind, help, check, tuple(choices or ()) or None
        self.optional, self.flags, self.metavar, self.on_resume = optional, flags, metavar, on_resume
        self.none_means = none_means

    def __call__(self, default):
        """A dataclass field with this spec and `default`."""
        return field(default=default, metadata={_SPEC: self})

    def coerce(self, name, value):
        """The value in its canonical type, or an OptionError naming `name`."""
        if value is None:
            if self.optional:
                return None
            raise OptionError(name, "is required (got None)")
        kind = self.kind
        if kind == "size":  # a memory size: bytes, or text such as 2GB
            if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
                raise OptionError(name, f"must be a size such as 512MB or 2GB (got {value!r})")
            parse_memory(value, name)
            return value
        if kind is bool:
            if isinstance(value, bool) or type(value).__name__ == "bool_":
                return bool(value)
            if isinstance(value, numbers.Integral) and value in (0, 1):  # gensim's habit: hs=0, hs=1
                return bool(value)
            raise OptionError(name, f"must be True or False (got {value!r})")
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise OptionError(name, f"must be an integer (got {value!r})")
            value = int(value)
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise OptionError(name, f"must be a number (got {value!r})")
            value = float(value)
            if not math.isfinite(value):
                raise OptionError(name, f"must be a finite number (got {value!r})")
        elif kind is str:
            if not isinstance(value, str):
                raise OptionError(name, f"must be a string (got {value!r})")
        if self.choices is not None and value not in self.choices:
            raise OptionError(name, f"must be one of {', '.join(map(str, self.choices))} (got {value!r})")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise OptionError(name, f"{problem} (got {value!r})")
        return value


# ------------------------------------------------------------------------------------------ checks
def at_least(lo):
    return lambda v: None if v >= lo else f"must be at least {lo}"


def positive(v):
    return None if v > 0 else "must be positive"


def non_negative(v):
    return None if v >= 0 else "must be 0 or positive"


def between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be between {lo:,} and {hi:,}"


def above_at_most(lo, hi):
    text = "must be positive" if lo == 0 else f"must be above {lo:g}"
    return lambda v: None if lo < v <= hi else f"{text} and at most {hi:,g}"


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30,
          "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
MIN_MEMORY = 16 << 20


def parse_memory(text, name="memory") -> int:
    """'2GB', '512M', '1.5g', or a plain byte count -> bytes (binary units, as free(1) prints)."""
    if isinstance(text, numbers.Real) and not isinstance(text, bool):
        value = int(text) if math.isfinite(text) else -1
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise OptionError(name, f"cannot read {text!r} (use a size such as 512MB or 2GB)")
        number = float(m.group(1)) * _UNITS[unit]
        if not math.isfinite(number) or number > 1 << 60:
            raise OptionError(name, f"is too large: {text}")
        value = int(number)
    if value < MIN_MEMORY:
        raise OptionError(name, f"is too small: {text} (at least 16MB)")
    return value


def regex(v):
    try:
        compiled = re.compile(v)
    except re.error as e:
        return f"is not a valid regular expression: {e}"
    if compiled.groups:
        return ("has capturing groups, which would make tokens of the groups only: write (?:...) for "
                "grouping")
    if compiled.match(""):
        return "matches the empty string"
    if _nested_repeat(v):
        return ("repeats a part that is itself repeated (like (?:a+)+), which can take exponential time on a "
                "short line: write it without the nested quantifier")
    return None


def _nested_repeat(pattern) -> bool:
    """Does the regular expression repeat (more than once) a part that begins with another repeat or with
    alternatives, like (?:a+)+ or (?:a|ab)*? Such patterns backtrack catastrophically: exponential time in the
    length of a line that fails to match. A repeated part that begins with a required character, like the
    -\\w+ of \\w+(?:-\\w+)*, is safe: each pass is anchored by it."""
    try:
        import re._parser as sre
    except ImportError:  # Python < 3.11
        import sre_parse as sre
    repeats = {sre.MAX_REPEAT, sre.MIN_REPEAT} | ({sre.POSSESSIVE_REPEAT} if hasattr(sre, "POSSESSIVE_REPEAT")
                                                    else set())

    def starts_ambiguous(items):
        items = list(items)
        if not items:
            return False
        op, av = items[0]
        if op in repeats:
            return av[1] > 1 or av[0] == 0
        if op is sre.BRANCH:
            return len(av[1]) > 1
        if op is sre.SUBPATTERN:
            return starts_ambiguous(av[-1])
        return False

    def walk(items):
        for op, av in items:
            if op in repeats:
                if av[1] > 1 and starts_ambiguous(av[2]):
                    return True
                if walk(av[2]):
                    return True
            elif op is sre.BRANCH:
                if any(walk(b) for b in av[1]):
                    return True
            elif op is sre.SUBPATTERN:
                if walk(av[-1]):
                    return True
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                if walk(av[1]):
                    return True
        return False
    try:
        return walk(sre.parse(pattern))
    except Exception:
        return True


# ----------------------------------------------------------------------------- the shared meanings
DIM = Spec(int, "Vector dimension.", check=between(1, 100_000))
WINDOW = Spec(int, "Context window: the most words on each side of a word.", check=between(1, 1000))
SAMPLE = Spec(float, "Subsampling threshold of frequent words (word2vec's formula), 0 = off.",
              check=between(0, 1))
EPOCHS = Spec(int, "Passes over the data.", check=between(1, 1_000_000))
SEED = Spec(int, "Random seed (initialisation, sampling, shuffling).", check=between(0, 2 ** 32 - 1))
THREADS = Spec(int, "Threads (default: all cores).", check=at_least(1), optional=True, on_resume="free",
               none_means="all cores")
ADD_CONTEXTS = Spec(bool, "Save word + context vectors as the embedding.",
                    flags="--add-contexts/--no-add-contexts")


# -------------------------------------------------------------------------------------- the base class
@dataclass(frozen=True)
class Options:
    """Base of every options class: validates and canonicalises each field on construction."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            spec = f.metadata.get(_SPEC)
            if spec is not None:
                object.__setattr__(self, f.name, spec.coerce(f.name, value))
            elif f.metadata.get(_NESTED):
                cls = type(f.default_factory())
                if isinstance(value, dict):
                    value = cls.from_dict(value)
                if not isinstance(value, cls):
                    raise OptionError(f.name, f"must be a {cls.__name__} (got {type(value).__name__})")
                object.__setattr__(self, f.name, value)
        self.check()

    def check(self):
        """Constraints between fields (subclasses extend)."""

    # -------------------------------------------------------------- structure
    @classmethod
    def specs(cls) -> dict:
        """Flat view: name -> (path of nested field names, Spec, default) for every leaf option."""
        cached = cls.__dict__.get("_specs_cache")
        if cached is not None:
            return cached
        out = {}
        defaults = cls()
        for f in dataclasses.fields(cls):
            spec = f.metadata.get(_SPEC)
            if spec is not None:
                out[f.name] = ((), spec, getattr(defaults, f.name))
            else:
                sub = getattr(defaults, f.name)
                for name, (path, s, _) in type(sub).specs().items():
                    if name in out:
                        raise TypeError(f"{cls.__name__}: option {name!r} appears twice")
                    out[name] = ((f.name, *path), s, getattr(_follow(sub, path), name))
        cls._specs_cache = out
        return out

    def get(self, name):
        path, _, _ = type(self).specs()[name]
        return getattr(_follow(self, path), name)

    def replace(self, **values):
        """A copy with flat-named values replaced (validated)."""
        specs = type(self).specs()
        nested: dict = {}
        for name, value in values.items():
            if name not in specs:
                raise OptionError(name, f"is not an option of {type(self).__name__}")
            nested.setdefault(specs[name][0], {})[name] = value
        return _replace_paths(self, nested)

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, Options) else v
        return out

    def flat(self) -> dict:
        return {name: self.get(name) for name in type(self).specs()}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise OptionError(cls.__name__, f"must be a mapping of options (got {type(d).__name__})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise OptionError(unknown[0], f"is not an option of {cls.__name__}")
        return cls(**d)


def _follow(obj, path):
    for p in path:
        obj = getattr(obj, p)
    return obj


def _replace_paths(obj, nested):
    changes = dict(nested.get((), {}))
    subs = {}
    for path, values in nested.items():
        if path:
            subs.setdefault(path[0], {})[path[1:]] = values
    for name, sub_nested in subs.items():
        changes[name] = _replace_paths(getattr(obj, name), sub_nested)
    return dataclasses.replace(obj, **changes) if changes else obj


def nested(factory):
    """A field holding another options object (e.g. GloVe's co-occurrence options, with its defaults)."""
    return field(default_factory=factory, metadata={_NESTED: True})


# ------------------------------------------------------------------------------------- run settings
@dataclass(frozen=True)
class RunOptions(Options):
    """How a run executes, shared by every command that computes: the seed fixes the result, the
    thread count only the speed (a 1-thread run is reproducible bit for bit)."""
    seed: int = SEED(1)
    threads: Optional[int] = THREADS(None)


def free_on_resume(*classes) -> set:
    """The option names a resumed run may change (their Spec says on_resume="free")."""
    return {name for cls in classes for name, (_, spec, _) in cls.specs().items() if spec.on_resume == "free"}


def split_known(values: dict, *classes) -> tuple[list, dict]:
    """Distribute flat `values` over option classes: ([dict per class], leftovers)."""
    parts, rest = [], dict(values)
    for cls in classes:
        names = cls.specs()
        parts.append({k: rest.pop(k) for k in list(rest) if k in names})
    return parts, rest


def describe_default(spec: Spec, default: Any) -> str:
    if default is None:
        return spec.none_means or "auto"
    if isinstance(default, bool):
        return "yes" if default else "no"
    return f"{default:g}" if isinstance(default, float) else str(default)


__all__ = ["Spec", "Options", "RunOptions", "OptionError", "param", "parse_memory", "at_least", "positive",
           "non_negative", "between", "nested", "DIM", "WINDOW", "SAMPLE", "EPOCHS", "SEED", "THREADS",
           "ADD_CONTEXTS"]
