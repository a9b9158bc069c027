"""Phrase detection: gensim's Phrases / word2vec.c's word2phrase, counted by Numba kernels in bounded memory.

Learning streams the corpus through the tokenizer kernel (tokenize.scan, the one used by the vocabulary
counter), which counts unigrams and hands over provisional ids; kernels.phrases.count_pairs counts every
candidate (a word, the connector words after it, the next word) as gensim's learn_vocab does. One memory
budget covers both tables; when it is reached both are pruned as the vocabulary counter prunes (entries
seen min_reduce times or fewer are dropped, min_reduce then grows by one), which the log says.

Scores are gensim's (original_scorer, npmi_scorer) with gensim's `len_vocab`: the number of distinct
unigrams (connector words excepted) plus distinct candidates counted. word2vec.c's word2phrase uses the
same formula with train_words (the corpus's token count) in place of len_vocab and also requires both words
to occur min_count times; those scores are therefore not word2phrase's.

A phrase table is a text file (see `PhraseTable.save`); `passes=2` learns a second table on the text
phrased by the first (trigrams and four-grams, as word2phrase run twice), and applying the table applies
its passes in order. `CorpusOptions(phrases=TABLE)` applies a table while any command reads its corpus.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import math
import os
from dataclasses import dataclass, field

import numpy as np

from fastemb.corpus import MAX_TOKEN_BYTES, CorpusOptions, CorpusReader, resolve_sources
from fastemb.errors import FastembError, FileError, OptionError
from fastemb.options import Options, Spec, between
from fastemb.progress import Progress, log

# gensim.models.phrases.ENGLISH_CONNECTOR_WORDS
ENGLISH_CONNECTOR_WORDS = tuple(
    "a an the for of with without at from to in on by and or".split())
MAGIC = "# fastemb phrases table"
SCORINGS = ("default", "npmi")


def _delimiter_problem(v):
    if not v:
        return "must not be empty"
    if any(c.isspace() or c == "\x00" for c in v):
        return "must not contain whitespace (a phrase must stay one token)"
    return None


def _connector_problem(v):
    if v in ("none", "english"):
        return None
    return "must be none or english (the API also takes a list of words)"


@dataclass(frozen=True)
class PhrasesOptions(Options):
    """How phrases are scored and joined (gensim's Phrases parameters; min_count is CorpusOptions')."""
    threshold: float = Spec(float, "Join two words when their score is above this (default scoring: "
                                   "gensim's 10; npmi: between -1 and 1).")(10.0)
    scoring: str = Spec(str, "default: word2vec's (count(ab) - min_count) / (count(a) count(b)) * vocabulary "
                             "size (gensim's); npmi: normalised pointwise mutual information.",
                        choices=SCORINGS)("default")
    delimiter: str = Spec(str, "Joins the words of a phrase.", check=_delimiter_problem)("_")
    passes: int = Spec(int, "Learn this many tables, each on the text phrased by the previous ones (2: "
                            "phrases of up to four words, as word2phrase run twice).", check=between(1, 8))(1)
    connector_words: str = Spec(str, "Words that may sit inside a phrase but never start or end one: none, "
                                     "or english (gensim's ENGLISH_CONNECTOR_WORDS: a, the, of, ...).",
                                check=_connector_problem)("none")

    def check(self):
        super().check()
        if self.scoring == "npmi" and not -1.0 <= self.threshold <= 1.0:
            raise OptionError("threshold", f"must be between -1 and 1 with npmi scoring (got {self.threshold!r})")


def connector_list(value) -> tuple:
    """The connector words of an option value: "none", "english", or an iterable of words."""
    if value is None or value == "none":
        return ()
    if value == "english":
        return ENGLISH_CONNECTOR_WORDS
    if isinstance(value, str):
        raise OptionError("connector_words", f"must be none, english or a list of words (got {value!r})")
    words = tuple(value)
    for w in words:
        if not isinstance(w, str) or not w or w.split() != [w] or "\x00" in w:
            raise OptionError("connector_words", f"every connector word must be one token (got {w!r})")
    return tuple(dict.fromkeys(words))


# ---------------------------------------------------------------------------------------------- tables
def _tk():
    from fastemb.kernels import tokenize
    return tokenize


def _pk():
    from fastemb.kernels import phrases
    return phrases


def string_set(words):
    """A tokenizer StringTable holding `words` (each one token), built by the tokenizer kernel itself so that
    its hashes are the ones the kernels compute."""
    from fastemb.vocab import StringTable
    K = _tk()
    table = StringTable(1 << max(4, (2 * len(words)).bit_length()))  # slots: a power of two
    if not words:
        return table
    data = np.frombuffer(("\n".join(words) + "\n").encode("utf-8"), np.uint8)
    longest = max(len(w.encode("utf-8")) for w in words) + 1
    ids, sents = np.empty(0, np.uint32), np.empty(0, np.int64)
    pos = 0
    while True:
        code, pos = K.scan(data, pos, True, 1 << 30, longest, False, 1 << 62, table.slots, table.e_hash,
                           table.e_off, table.e_len, table.e_count, table.e_pid, table.arena, table.state, ids, sents)
        if code == K.DONE:
            return table
        table.grow(longest)


class PairTable:
    """The candidate phrases with their counts: two-word candidates as rows (key, count) of an open-addressing
    table (kernels.phrases.pair_key; a key 0 is an empty row) that doubles when half full; longer ones
    (connector words inside) as the bytes of their pids in a tokenizer StringTable."""

    def __init__(self, rows=1 << 16):
        from fastemb.vocab import StringTable
        P = _pk()
        self.pairs = np.zeros((rows, 2), np.uint64)
        self.longs = StringTable(1 << 10)
        self.state = np.zeros(P.C_STATE_SIZE, np.int64)
        self.key = np.zeros(16 * P.PID_BYTES, np.uint8)

    @property
    def n_pairs(self):
        return int(self.state[_pk().C_PAIRS])

    @property
    def n(self):
        return self.n_pairs + self.longs.n

    def count(self, ids, ends, base, has_conn, is_conn, max_entries):
        """count_pairs from the buffer position the state holds: DONE or NEED_ROOM (grow, or prune once the
        tables hold max_entries, and call again)."""
        t = self.longs
        return _pk().count_pairs(ids, ends, base, has_conn, is_conn, max_entries, self.state, self.pairs, self.key,
                                 t.slots, t.e_hash, t.e_off, t.e_len, t.e_count, t.e_pid, t.arena, t.state)

    def grow(self):
        P = _pk()
        if 2 * (self.n_pairs + 1) > self.pairs.shape[0]:
            # up to 2**22 rows (64 MB) the table grows fourfold: fewer copies, less memory touched for the first
            # time (each new page costs a fault), a smaller peak than two doublings
            rows = self.pairs.shape[0]
            new = np.zeros((rows * (4 if rows < 1 << 22 else 2), 2), np.uint64)
            P.rehash_pairs(self.pairs, new)
            self.pairs = new
        self.longs.grow(self.key.shape[0])
        if P.PID_BYTES * (self.state[P.C_KEY_LEN] + 2) > self.key.shape[0]:
            key = np.zeros(2 * self.key.shape[0], np.uint8)
            key[:self.key.shape[0]] = self.key
            self.key = key

    def prune(self, min_reduce):
        """Drop candidates counted min_reduce times or fewer; returns how many were dropped."""
        P = _pk()
        n = self.n
        self.state[P.C_PAIRS] = P.prune_pairs(self.pairs, min_reduce)
        self.longs.prune(min_reduce)
        return n - self.n

    def sequences(self, chosen):
        """The pids of each chosen candidate (a row of the pair table, or pairs.shape[0] + an entry of the long
        candidates' table), and their counts."""
        P = _pk()
        rows = self.pairs.shape[0]
        is_pair = chosen < rows
        keys = self.pairs[chosen[is_pair], 0] - np.uint64(1)
        firsts, seconds = (keys >> np.uint64(32)).tolist(), (keys & np.uint64(0xFFFFFFFF)).tolist()
        counts = np.zeros(len(chosen), np.int64)
        counts[is_pair] = self.pairs[chosen[is_pair], 1]
        t, longs = self.longs, chosen[~is_pair] - rows
        counts[~is_pair] = t.e_count[longs]
        seqs, k = [], 0
        for c, pair in zip(chosen.tolist(), is_pair.tolist()):
            if pair:
                seqs.append((firsts[k], seconds[k]))
                k += 1
            else:
                e = c - rows
                seqs.append(t.arena[t.e_off[e]:t.e_off[e] + t.e_len[e]].view(f"<u{P.PID_BYTES}").tolist())
        return seqs, counts


@dataclass
class PhrasePass:
    """One pass's phrases: the delimiter-joined strings, their scores and counts, most confident first."""
    phrases: list
    scores: np.ndarray
    counts: np.ndarray
    words: int = 0          # tokens read in this pass (gensim's corpus_word_count)
    vocab: int = 0          # gensim's len_vocab: distinct unigrams (connectors excepted) + candidates
    pruned: int = 0         # entries the memory budget dropped

    def __len__(self):
        return len(self.phrases)

    def as_dict(self):
        return dict(zip(self.phrases, self.scores.tolist()))


@dataclass
class PhraseTable:
    """Learned phrases (one PhrasePass per pass) and the settings that apply them."""
    passes: list
    delimiter: str = "_"
    connector_words: tuple = ()
    settings: dict = field(default_factory=dict)

    def __len__(self):
        return sum(len(p) for p in self.passes)

    def as_dict(self):
        """phrase -> score over all passes (gensim's export_phrases for one pass)."""
        out = {}
        for p in self.passes:
            out.update(p.as_dict())
        return out

    # -------------------------------------------------------------------------------- file
    def save(self, path):
        """A UTF-8 text file: '# ' lines hold the settings ('# key<TAB>value'), '# pass<TAB>N' starts pass
        N's phrases, then one 'phrase<TAB>score<TAB>count' line per phrase."""
        from fastemb.store import atomic_output
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(MAGIC + "\n")
            f.write(f"# delimiter\t{self.delimiter}\n")
            f.write("# connector_words" + "".join(f"\t{w}" for w in self.connector_words) + "\n")
            for k, v in self.settings.items():  # a record: a tab or line break in a value (a path) becomes a space
                f.write(f"# {k}\t{' '.join(str(v).split())}\n")
            for n, p in enumerate(self.passes, 1):
                f.write(f"# pass\t{n}\n")
                f.write(f"# pass_stats\tphrases={len(p)} words={p.words} vocab={p.vocab} pruned={p.pruned}\n")
                for w, s, c in zip(p.phrases, p.scores.tolist(), p.counts.tolist()):
                    f.write(f"{w}\t{s!r}\t{c}\n")

    @classmethod
    def load(cls, path):
        """Read and check a table file: any malformed line is refused in one line naming the file and line."""
        from fastemb.files import read_text_lines
        passes, delimiter, connectors, settings = [], None, None, {}
        current = None
        seen = set()
        n = 0
        for n, line in read_text_lines(path, "phrase table"):
            if n == 1:
                if line != MAGIC:
                    raise FileError(f"{path}:1: not a phrase table (expected {MAGIC!r}; write one with "
                                    f"`fastemb phrases`)")
                continue
            if line.startswith("# "):
                key, _, value = line[2:].partition("\t")
                if key == "delimiter":
                    if _delimiter_problem(value):
                        raise FileError(f"{path}:{n}: delimiter {_delimiter_problem(value)}")
                    delimiter = value
                elif key == "connector_words":
                    words = value.split("\t") if value else []
                    if any(not w or w.split() != [w] for w in words):
                        raise FileError(f"{path}:{n}: connector words must be tab-separated tokens")
                    connectors = tuple(words)
                elif key == "pass":
                    if value != str(len(passes) + 1):
                        raise FileError(f"{path}:{n}: expected '# pass<TAB>{len(passes) + 1}'")
                    current = ([], [], [])
                    passes.append(current)
                    seen = set()
                elif key not in ("pass_stats",):
                    settings[key] = value
                continue
            if delimiter is None or connectors is None or current is None:
                raise FileError(f"{path}:{n}: phrase before the '# delimiter', '# connector_words' and "
                                f"'# pass' lines")
            parts = line.split("\t")
            if len(parts) != 3:
                raise FileError(f"{path}:{n}: expected phrase<TAB>score<TAB>count")
            phrase, s, c = parts
            if not phrase or phrase.split() != [phrase] or "\x00" in phrase:
                raise FileError(f"{path}:{n}: the phrase {phrase[:40]!r} is empty or holds whitespace")
            if delimiter not in phrase.strip(delimiter):
                raise FileError(f"{path}:{n}: {phrase[:40]!r} is not two or more words joined by {delimiter!r}")
            try:
                score = float(s)
            except ValueError:
                score = math.nan
            if math.isnan(score):
                raise FileError(f"{path}:{n}: score {s[:40]!r} is not a number")
            if not c.isdigit() or int(c) < 1:
                raise FileError(f"{path}:{n}: count {c[:40]!r} is not a positive integer")
            if phrase in seen:
                raise FileError(f"{path}:{n}: {phrase[:40]!r} is listed twice in pass {len(passes)}")
            seen.add(phrase)
            current[0].append(phrase)
            current[1].append(score)
            current[2].append(int(c))
        if n == 0:
            raise FileError(f"{path}: empty file, not a phrase table")
        if delimiter is None or connectors is None or not passes:
            raise FileError(f"{path}: incomplete phrase table (no '# delimiter', '# connector_words' or "
                            f"'# pass' line)")
        return cls([PhrasePass(p, np.array(s, np.float64), np.array(c, np.int64)) for p, s, c in passes],
                   delimiter, connectors, settings)

    # -------------------------------------------------------------------------------- applying
    def stream(self, chunks, max_sentence_length=10_000):
        """Phrase a stream of normalised text chunks (as CorpusReader yields), pass after pass."""
        for p in self.passes:
            chunks = _Applier(p.phrases, self.delimiter, self.connector_words, max_sentence_length).run(chunks)
        return chunks

    def apply(self, corpus, output, *, force=False, options: CorpusOptions | None = None, **corpus_options):
        """Write `corpus` (files, or sentences) phrased to `output`, one sentence per line; returns the
        number of bytes written."""
        o = _corpus_options(options, corpus_options)
        from fastemb.store import check_output
        check_output(output, force)
        reader = CorpusReader(corpus, lowercase=o.lowercase, token_pattern=o.token_pattern)
        return _write(self.stream(reader, o.max_sentence_length), reader, output, "apply")


_TABLES = {}


def load_table(path) -> PhraseTable:
    """A phrase table file, read and checked once per process (by path, size and modification time)."""
    st = os.stat(path) if os.path.exists(path) else None
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns) if st else None
    if key is not None and key in _TABLES:
        return _TABLES[key]
    table = PhraseTable.load(path)
    if key is not None:
        _TABLES.clear()
        _TABLES[key] = table
    return table


def _intern(table, words, max_token):
    """The provisional ids of `words` (tokens, as bytes) in a tokenizer table, adding those it lacks; of its
    counters only the entries' move."""
    K = _tk()
    st = table.state.copy()
    for k in (K.S_OUT, K.S_SENTS, K.S_SENT_LEN, K.S_SKIPPING):
        st[k] = 0
    data = np.frombuffer(b" ".join(words), np.uint8)  # no line end: no sentence
    ids, sents = np.empty(len(words), np.uint32), np.empty(1, np.int64)
    pos = 0
    while True:
        code, pos = K.scan(data, pos, True, 1 << 30, max_token, True, 1 << 62, table.slots, table.e_hash, table.e_off,
                           table.e_len, table.e_count, table.e_pid, table.arena, st, ids, sents)
        for k in (K.S_ENTRIES, K.S_ARENA, K.S_NEXT_PID):
            table.state[k] = st[k]
        if code == K.DONE:
            return ids[:st[K.S_OUT]]
        table.grow(max_token)


class _Applier:
    """One pass of phrasing over a chunk stream: the tokenizer kernel splits each chunk into a table of the
    words seen (emptied between chunks once it holds RESET_ENTRIES, so memory stays bounded; its provisional
    ids are its entries), apply_phrases joins and writes."""
    RESET_ENTRIES = 1 << 18

    def __init__(self, phrases, delimiter, connectors, max_sentence_length):
        from fastemb.vocab import StringTable
        P = _pk()
        self.table = StringTable()
        self.phr = string_set(phrases)
        # the words (and, with a delimiter inside tokens, word sequences) that start and end some phrase
        d = delimiter
        firsts, lasts = set(), set()
        for w in phrases:
            k = w.find(d)
            while k > 0:
                firsts.add(w[:k])
                lasts.add(w[k + len(d):])
                k = w.find(d, k + 1)
        self.sets = [(string_set(list(connectors)), P.IS_CONN), (string_set(sorted(firsts)), P.IS_FIRST),
                     (string_set(sorted(lasts)), P.IS_LAST)]
        self.flags = np.zeros(1 << 16, np.uint8)  # by pid
        self.known = np.zeros((1 << 16, 2), np.uint64)  # apply_phrases' answers for two-word candidates
        self.has_conn = bool(connectors)
        self.delim = np.frombuffer(delimiter.encode("utf-8"), np.uint8)
        self.max_sentence = max_sentence_length
        self.scratch = np.zeros(1 << 12, np.uint8)
        self.seg = np.zeros(64, np.int64)
        self.st = np.zeros(P.A_STATE_SIZE, np.int64)
        self.out = np.zeros(1 << 21, np.uint8)
        self.ids = np.empty(1 << 18, np.uint32)
        self.sents = np.empty(1 << 15, np.int64)
        self.marked = 0  # table entries whose flags are set

    def _reset_table(self):
        """Empty the table; the pending tokens (a start word and connectors, not yet written: their ids in
        seg) are put back first."""
        K, P = _tk(), _pk()
        t = self.table
        ntok = int(self.st[P.A_TOKENS])
        words = [t.arena[t.e_off[p]:t.e_off[p] + t.e_len[p]].tobytes() for p in self.seg[:ntok].tolist()]
        t.state[K.S_ENTRIES] = 0
        t.state[K.S_ARENA] = 0
        t.state[K.S_NEXT_PID] = 0
        t.slots.fill(K.EMPTY)
        self.marked = 0
        self.known.fill(0)
        if words:
            self.seg[:ntok] = _intern(t, words, MAX_TOKEN_BYTES)

    def _apply_buffered(self, parts):
        K, P = _tk(), _pk()
        t, st = self.table, self.st
        n_out, n_sents = int(t.state[K.S_OUT]), int(t.state[K.S_SENTS])
        base = int(t.state[K.S_EMITTED]) - n_out
        st[P.A_POS] = 0
        st[P.A_END] = 0
        n = t.n
        if n > self.flags.shape[0]:
            flags = np.zeros(2 * n, np.uint8)
            flags[:self.flags.shape[0]] = self.flags
            self.flags = flags
        for s, bit in self.sets:
            if s.n:
                P.mark_members(self.marked, n, t.arena, t.e_off, t.e_len, t.e_hash, t.e_pid, s.slots, s.e_off,
                               s.e_len, s.arena, self.flags, bit)
        self.marked = n
        while True:
            code = P.apply_phrases(self.ids[:n_out], self.sents[:n_sents], base, t.arena, t.e_off, t.e_len,
                                   self.flags, self.phr.slots, self.phr.e_off, self.phr.e_len, self.phr.arena,
                                   self.delim, self.scratch, self.seg, self.known, st, self.out)
            if code == P.OUT_FULL or code == P.DONE:
                if st[P.A_OUT]:
                    parts.append(self.out[:st[P.A_OUT]].tobytes())
                    st[P.A_OUT] = 0
                if code == P.DONE:
                    break
            else:
                self.scratch = np.concatenate((self.scratch, np.zeros_like(self.scratch)))
                self.seg = np.concatenate((self.seg, np.zeros_like(self.seg)))
        t.state[K.S_OUT] = 0
        t.state[K.S_SENTS] = 0

    def _feed(self, data, final, parts):
        K = _tk()
        t = self.table
        buf = np.frombuffer(data, np.uint8)
        if t.n > self.RESET_ENTRIES:
            self._reset_table()
        pos = 0
        while True:
            code, pos = K.scan(buf, pos, final, self.max_sentence, MAX_TOKEN_BYTES, True, 1 << 62, t.slots,
                               t.e_hash, t.e_off, t.e_len, t.e_count, t.e_pid, t.arena, t.state, self.ids, self.sents)
            if code == K.NEED_ROOM:
                t.grow(MAX_TOKEN_BYTES)
                continue
            self._apply_buffered(parts)
            if code == K.DONE:
                return pos

    def run(self, chunks):
        carry = b""
        for chunk in chunks:
            data = carry + chunk if carry else chunk
            parts = []
            pos = self._feed(data, False, parts)
            carry = data[pos:]
            if parts:
                yield b"".join(parts)
        parts = []
        self._feed(carry + b"\n", True, parts)
        if parts:
            yield b"".join(parts)


# ---------------------------------------------------------------------------------------------- learning
def _read_once(sources):
    """Does a source vanish once read (an iterator of sentences)?"""
    return any(not isinstance(s, str) and iter(s.iterable) is s.iterable for s in sources)


def _corpus_options(options, corpus_options):
    o = options if options is not None else CorpusOptions(**corpus_options)
    if options is not None and corpus_options:
        o = o.replace(**corpus_options)
    return o


@contextlib.contextmanager
def _gc_paused():
    """Python's collector off while many small objects are made at once (the phrase strings: they hold no
    cycles), which would otherwise set off full collections over every object the process holds (Numba's:
    about 100,000; 50 ms of a 0.7 s table on en.txt)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _learn_pass(chunks, reader, *, min_count, scoring, threshold, delimiter, connectors, max_sentence_length,
                max_entries, label, first_pass=True):
    """Count one pass's unigrams and candidates over `chunks` and score them: a PhrasePass."""
    from fastemb.vocab import StringTable
    K, P = _tk(), _pk()
    uni, pairs = StringTable(), PairTable(1 << min(20, max(10, max_entries.bit_length())))
    conn = string_set(list(connectors))
    has_conn = bool(connectors)
    is_conn = np.zeros(1 << 16, np.uint8)
    marked = 0
    ids_buf, sents_buf = np.empty(1 << 20, np.uint32), np.empty(1 << 17, np.int64)
    progress = Progress(label, reader.total_bytes, unit="tokens")
    pruned, min_reduce = 0, 1

    def prune():
        nonlocal pruned, min_reduce, marked
        a = uni.prune(min_reduce)
        b = pairs.prune(min_reduce)
        pruned += a + b
        log.info(f"phrases: tables reached {max_entries:,} entries (memory budget): pruned {a:,} words and {b:,} "
                 f"candidate phrases seen {min_reduce} time(s) or fewer; their counts are lost (the counts of "
                 f"what is kept are lower bounds)")
        min_reduce += 1
        marked = uni.n

    def mark():
        nonlocal marked, is_conn
        if not has_conn or uni.n == marked:
            return
        need = int(uni.state[K.S_NEXT_PID])
        if need > is_conn.shape[0]:
            grown = np.zeros(max(need, 2 * is_conn.shape[0]), np.uint8)
            grown[:is_conn.shape[0]] = is_conn
            is_conn = grown
        P.mark_members(marked, uni.n, uni.arena, uni.e_off, uni.e_len, uni.e_hash, uni.e_pid, conn.slots,
                       conn.e_off, conn.e_len, conn.arena, is_conn, P.IS_CONN)
        marked = uni.n

    def count_buffered():
        n_out, n_sents = int(uni.state[K.S_OUT]), int(uni.state[K.S_SENTS])
        base = int(uni.state[K.S_EMITTED]) - n_out
        pairs.state[P.C_POS] = 0
        pairs.state[P.C_END] = 0
        while True:
            code = pairs.count(ids_buf[:n_out], sents_buf[:n_sents], base, has_conn, is_conn, max_entries - uni.n)
            if code == P.DONE:
                break
            if uni.n + pairs.n >= max_entries:
                prune()
            else:
                pairs.grow()
        uni.state[K.S_OUT] = 0
        uni.state[K.S_SENTS] = 0

    carry = b""
    for chunk in chunks:
        data = carry + chunk if carry else chunk
        buf = np.frombuffer(data, np.uint8)
        pos = 0
        while True:
            code, pos = K.scan(buf, pos, False, max_sentence_length, MAX_TOKEN_BYTES, True,
                               max(0, max_entries - pairs.n), uni.slots, uni.e_hash, uni.e_off, uni.e_len,
                               uni.e_count, uni.e_pid, uni.arena, uni.state, ids_buf, sents_buf)
            mark()
            if code == K.NEED_ROOM:
                if uni.n + pairs.n >= max_entries:
                    count_buffered()
                    prune()
                else:
                    uni.grow(MAX_TOKEN_BYTES)
                continue
            count_buffered()
            if code == K.DONE:
                break
        carry = data[pos:]
        progress.update(reader.bytes_done, int(uni.state[K.S_TOKENS]))
    if carry:  # every source ends with b"\n"
        raise AssertionError("tokenizer left an unfinished token")
    progress.done()
    total_words = int(uni.state[K.S_TOKENS])
    if first_pass:
        from fastemb.vocab import check_counted, warn_reading
        warn_reading(reader.invalid_bytes, reader.invalid_sources, int(uni.state[K.S_TRUNCATED]))
        check_counted(total_words, 1, uni.n, 1, reader.sources)
    n_uni, n_pairs = uni.n, pairs.n
    remap = np.full(int(uni.state[K.S_NEXT_PID]), -1, np.int64)
    remap[uni.e_pid[:n_uni]] = np.arange(n_uni)
    n_conn = int(is_conn[uni.e_pid[:n_uni]].sum()) if has_conn else 0
    len_vocab = n_uni - n_conn + n_pairs
    t = pairs.longs
    chosen, scores = P.score_pairs(pairs.pairs, t.n, t.e_off, t.e_len, t.e_count, t.arena, remap, uni.e_count,
                                   P.SCORING_NPMI if scoring == "npmi" else P.SCORING_DEFAULT, min_count, len_vocab,
                                   total_words, threshold)
    with _gc_paused():
        seqs, counts = pairs.sequences(chosen)
        word = {p: uni.word(int(remap[p])) for p in {p for seq in seqs for p in seq}}
        phrases = [delimiter.join([word[p] for p in seq]) for seq in seqs]
        listed = scores.tolist()
        order = sorted(range(len(phrases)), key=lambda k: (-listed[k], phrases[k]))
    result = PhrasePass([phrases[k] for k in order], scores[order], counts[order], words=total_words,
                        vocab=len_vocab, pruned=pruned)
    # gensim's merging of equal strings: with a delimiter inside the corpus's own tokens, two candidates can
    # join to the same string; keep the first (highest score) and say so.
    if len(set(result.phrases)) != len(result.phrases):
        keep, seen = [], set()
        for k, w in enumerate(result.phrases):
            if w not in seen:
                seen.add(w)
                keep.append(k)
        log.warning(f"warning: {len(result.phrases) - len(keep):,} phrases join to the same string as another "
                    f"(the corpus's tokens contain the delimiter {delimiter!r}); the higher-scoring one is kept")
        result = PhrasePass([result.phrases[k] for k in keep], result.scores[keep], result.counts[keep],
                            words=total_words, vocab=len_vocab, pruned=pruned)
    log.info(f"{label}: {len(result):,} phrases from {n_uni - n_conn:,} words and {n_pairs:,} candidates in "
             f"{total_words:,} tokens" + (f" ({pruned:,} entries pruned by the memory budget)" if pruned else ""))
    return result


def _write(chunks, reader, output, label):
    from fastemb.store import atomic_output
    written = 0
    progress = Progress(label, reader.total_bytes, unit="bytes")
    with atomic_output(output) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            written += len(chunk)
            progress.update(reader.bytes_done, written)
    progress.done()
    return written


def learn(corpus, options: PhrasesOptions | None = None, corpus_options: CorpusOptions | None = None, *,
          connector_words=None, memory_bytes=None) -> PhraseTable:
    """Learn a PhraseTable from `corpus` (files or sentences; read once per pass)."""
    po = options if options is not None else PhrasesOptions()
    co = corpus_options if corpus_options is not None else CorpusOptions()
    if co.phrases is not None:
        raise OptionError("phrases", "applies a table while reading; to learn a table give no --phrases "
                                     "(to apply one, use --apply)")
    if co.max_vocab is not None:
        raise OptionError("max_vocab", "does not apply to phrase learning (the memory budget bounds it)")
    connectors = connector_list(po.connector_words if connector_words is None else connector_words)
    sources = resolve_sources(corpus)
    if po.passes > 1 and any(s == "-" for s in sources):
        raise FastembError("standard input can be read only once: with passes > 1 save it to a file first")
    if po.passes > 1 and _read_once(sources):
        raise FastembError("an iterator of sentences can be read only once: with passes > 1 give a list of "
                           "sentences or files")
    memory = co.memory_bytes if memory_bytes is None else int(memory_bytes)
    from fastemb.vocab import BYTES_PER_ENTRY
    max_entries = max(1 << 10, memory // BYTES_PER_ENTRY)
    table = PhraseTable([], po.delimiter, connectors)
    for n in range(po.passes):
        reader = CorpusReader(corpus, lowercase=co.lowercase, token_pattern=co.token_pattern)
        chunks = table.stream(reader, co.max_sentence_length) if table.passes else reader
        table.passes.append(_learn_pass(chunks, reader, min_count=co.min_count, scoring=po.scoring,
                                        threshold=po.threshold, delimiter=po.delimiter, connectors=connectors,
                                        max_sentence_length=co.max_sentence_length, max_entries=max_entries,
                                        label=f"phrases pass {n + 1}", first_pass=n == 0))
    names = [s if isinstance(s, str) else "<python iterable>" for s in sources]
    table.settings = {"min_count": co.min_count, "threshold": po.threshold, "scoring": po.scoring,
                      "passes": po.passes, "lowercase": co.lowercase, "token_pattern": co.token_pattern or "",
                      "max_sentence_length": co.max_sentence_length, "memory": co.memory,
                      "corpus": " ".join(os.path.abspath(s) if s != "-" and s != "<python iterable>" else s
                                         for s in names),
                      "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return table


def phrases(corpus, output=None, *, table=None, apply=None, force=False, options: PhrasesOptions | None = None,
            corpus_options: CorpusOptions | None = None, connector_words=None, memory_bytes=None, **params):
    """Detect phrases (gensim's Phrases, word2vec.c's word2phrase) and write the phrased corpus.

    Learn a table from `corpus` (files, directories or an iterable of sentences) and, when `output` is given,
    write the corpus with its phrases joined ("new york" -> "new_york"), one sentence per line; `table`
    saves the learned table. With `apply=TABLE` (a path or a PhraseTable) nothing is learned: the table is
    applied. Options: PhrasesOptions (threshold, scoring, delimiter, passes, connector_words: "none",
    "english" or a list of words) and CorpusOptions (min_count, lowercase, ...) as keywords or objects.
    Returns the PhraseTable."""
    from fastemb.store import check_output
    p_names, c_names = PhrasesOptions.specs(), CorpusOptions.specs()
    unknown = [k for k in params if k not in p_names and k not in c_names]
    if unknown:
        raise OptionError(unknown[0], "is not an option of phrases")
    if isinstance(params.get("connector_words"), (list, tuple, set, frozenset)):
        connector_words = params.pop("connector_words")
    po = options if options is not None else PhrasesOptions(**{k: v for k, v in params.items() if k in p_names})
    if options is not None and any(k in p_names for k in params):
        po = po.replace(**{k: v for k, v in params.items() if k in p_names})
    co = _corpus_options(corpus_options, {k: v for k, v in params.items() if k in c_names})
    for path in (output, table):
        if path is not None:
            check_output(path, force)
    if output is not None and table is not None and os.path.abspath(output) == os.path.abspath(table):
        raise OptionError("table", "must not be the output file")
    if apply is not None:
        given_p = [k for k in params if k in p_names] + (["connector_words"] if connector_words is not None else [])
        if given_p:
            raise OptionError(given_p[0], "comes from the table when applying one (--apply)")
        t = apply if isinstance(apply, PhraseTable) else PhraseTable.load(apply)
        if output is None:
            raise OptionError("output", "is required with apply")
        t.apply(corpus, output, force=True, options=co.replace(phrases=None) if co.phrases else co)
        return t
    if output is not None:
        srcs = resolve_sources(corpus)
        if any(s == "-" for s in srcs):
            raise FastembError("standard input can be read only once: learning and writing read the corpus "
                               "twice; save it to a file first (stdin works with --apply)")
        if _read_once(srcs):
            raise FastembError("an iterator of sentences can be read only once: give a list of sentences or "
                               "files to write the phrased corpus")
    t = learn(corpus, po, co, connector_words=connector_words, memory_bytes=memory_bytes)
    if table is not None:
        t.save(table)
    if output is not None:
        t.apply(corpus, output, force=True, options=co)
    return t
