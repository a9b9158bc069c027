"""Errors that reach the user as one line (never a traceback).

A message names parameters with `param("name")`: the API shows the Python name (`dim must be at least 1`),
the CLI shows the flag (`--dim must be at least 1`), from the same exception."""
from __future__ import annotations

import re

_MARK = re.compile("\ue000([A-Za-z_][A-Za-z0-9_]*)\ue001")


def param(name: str) -> str:
    """A parameter's name inside an error message, rendered per audience (see `FastembError.render`)."""
    return f"\ue000{name}\ue001"


def flag_of(name: str) -> str:
    """The CLI flag of an API parameter, by the convention every command follows."""
    return "--" + name.replace("_", "-")


def render(text: str, flags=None) -> str:
    """A message with its parameters named as API names (flags None) or as CLI flags (a mapping)."""
    if flags is None:
        return _MARK.sub(lambda m: m.group(1), text)
    return _MARK.sub(lambda m: flags.get(m.group(1), flag_of(m.group(1))), text)


class FastembError(ValueError):
    """Bad input or an impossible request: the CLI prints the message and exits with `exit_code`."""

    exit_code = 1

    def render(self, flags=None) -> str:
        """The message with parameters shown as CLI flags (`flags`: name -> flag, else --name-with-dashes)."""
        return render(str(self.args[0]) if self.args else "", flags or {})

    def __str__(self):
        return render(str(self.args[0]) if self.args else "")


class OptionError(FastembError):
    """A parameter's value is refused; `param` is its API name."""

    def __init__(self, name: str, problem: str):
        self.param, self.problem = name, problem
        super().__init__(f"{param(name)} {problem}")


class UnknownWord(FastembError, KeyError):
    """A word that is not in the vocabulary: a KeyError as in gensim, and a FastembError."""

    def __init__(self, word):
        self.word = word
        FastembError.__init__(self, f"word not in vocabulary: {word!r}")

    def __str__(self):
        return FastembError.__str__(self)


class FileError(FastembError, OSError):
    """A file cannot be read, written or trusted (missing, unreadable, damaged, foreign)."""

    def __init__(self, message):
        FastembError.__init__(self, message)

    def __str__(self):
        return FastembError.__str__(self)


class Interrupted(BaseException):
    """Raised from a SIGTERM handler so that cleanup (temp files) runs as for Ctrl-C (a BaseException, so
    that no `except Exception` swallows it)."""

    exit_code = 143
