"""All defaults in one place, and the one function that validates them."""
from __future__ import annotations

import re

from .errors import FastembError

MIN_COUNT = 5
MAX_SENTENCE_LENGTH = 10_000
# word2vec.c truncates words at 100 bytes; a longer cap keeps real tokens (URLs, hashes) whole while
# still bounding the memory one token can take when a file has no whitespace at all.
MAX_TOKEN_BYTES = 1000
MEMORY = "2GB"
COOC_WINDOW = 10
COOC_WEIGHTING = "harmonic"
WEIGHTINGS = ("dynamic", "harmonic", "uniform")

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30,
          "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}


def parse_memory(text) -> int:
    """'2GB', '512M', '1.5g', or a plain byte count -> bytes (binary units, as free(1) prints)."""
    if isinstance(text, (int, float)):
        value = int(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        unit = m.group(2).upper() if m else None
        if not m or unit not in _UNITS:
            raise FastembError(f"--memory: cannot read {text!r} (use a size such as 512MB or 2GB)")
        value = int(float(m.group(1)) * _UNITS[unit])
    if value < (16 << 20):
        raise FastembError(f"--memory: {text} is too small (at least 16MB)")
    return value


def require(condition: bool, message: str):
    if not condition:
        raise FastembError(message)


def check_corpus_options(min_count, max_vocab, max_sentence_length):
    require(min_count >= 1, f"--min-count must be at least 1 (got {min_count})")
    require(max_vocab is None or max_vocab >= 1, f"--max-vocab must be at least 1 (got {max_vocab})")
    require(max_sentence_length >= 2,
            f"--max-sentence-length must be at least 2 (got {max_sentence_length})")


def check_window(window):
    require(window >= 1, f"--window must be at least 1 (got {window})")


def check_sample(sample):
    require(sample >= 0, f"--sample must be 0 (off) or positive (got {sample})")
