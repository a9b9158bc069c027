"""Distributed counting with Dask: vocabulary, co-occurrences and PPMI-SVD over a cluster.

The corpus is cut into shards: byte ranges of files that start after a newline and end at one (compressed
files are one shard each), read with fsspec so that local paths, directories and URLs (s3://, gs://,
file://, memory://...) all work. Every task runs the kernels of the local path on its shard's bytes,
normalised by the local reader's own code, so a distributed result equals the local one:

* `vocabulary` merges exact per-shard counts; ties are broken by global first occurrence (shards are
  ordered by file and offset and report each word's first position). Equal to `build_vocab` unless a
  shard's table had to be pruned by the memory budget (a warning says so: counts become lower bounds,
  as in a local run that prunes, but the two prune differently).
* `cooccurrences` counts each shard in fixed point (sums are exact integers whatever the split), cuts the
  pairs into row ranges, reduces each range in one task and streams the ranges, in order, to a CSR
  matrix or to an HDF5 file through store.CoocWriter. With `sample > 0` every sentence is subsampled
  with the RNG seeded by its GLOBAL index in the encoded corpus (the index the local path uses), so the
  matrix is bit-identical to `fastemb cooc` whatever the number of workers and shards.
* `ppmi_svd` / `randomized_svd_blocks`: PPMI and a blockwise randomized SVD (Halko et al.) on row blocks
  of the matrix, products run per block in tasks; the matrix is never densified.

Tasks are pure functions of their arguments, so Dask can recompute whatever a dead worker held and the
result is the same. dask, distributed and fsspec are imported inside the functions: without them every
entry point fails with one line (`pip install 'fastemb[dask]'`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

import numpy as np

from fastemb.errors import FastembError, FileError, param
from fastemb.progress import Progress, log

DASK_MISSING = "distributed counting needs dask: pip install 'fastemb[dask]'"
DEFAULT_SHARD_BYTES = 64 << 20
HEAD_BYTES = 4096        # the local reader sniffs this much of a file: a file's first shard is never shorter
FIRST_BITS = 40          # a word's first occurrence: (shard index << FIRST_BITS) | its first local id
TREE_FANIN = 8


def _require():
    """The distributed module, or the one-line error when dask/distributed/fsspec are missing."""
    try:
        import dask  # noqa: F401
        import distributed
        import fsspec  # noqa: F401
    except ImportError:
        raise FastembError(DASK_MISSING) from None
    return distributed


# ------------------------------------------------------------------------------------------- client
def connect(address):
    """(client, owned) for `address`: a dask.distributed Client (returned as is, owned False), a scheduler
    address such as "tcp://host:8786", or "local:N" for a LocalCluster of N worker processes of one thread
    each ("local" alone: one per core). When owned is True the caller closes the client (which also shuts
    down a LocalCluster it started)."""
    distributed = _require()
    if isinstance(address, distributed.Client):
        return address, False
    if not isinstance(address, str) or not address.strip():
        raise FastembError(f"{param('dask')} must be a scheduler address or local:N (got {address!r})")
    a = address.strip()
    if a == "local" or a.startswith("local:"):
        m = re.fullmatch(r"local(?::(\d+))?", a)
        if not m or (m.group(1) is not None and int(m.group(1)) < 1):
            raise FastembError(f"{param('dask')} {address!r}: expected local:N with N >= 1 worker processes, or "
                               f"a scheduler address such as tcp://host:8786")
        n = int(m.group(1)) if m.group(1) else (os.cpu_count() or 1)
        client = distributed.Client(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
        _announce(client)
        return client, True
    try:
        client = distributed.Client(a, timeout="30s")
    except (OSError, ValueError, TypeError) as e:
        raise FastembError(f"cannot connect to the Dask scheduler at {a}: {e}") from None
    _announce(client)
    return client, True


def _identity(x):
    return x


def _shared(client, obj):
    """obj on the cluster as the result of a task (not scattered data): a worker that dies holding it is
    survived, since Dask recomputes a task's result from the graph but cannot recompute scattered data
    (its dependents would be cancelled for "lost dependencies")."""
    return client.submit(_identity, obj, pure=False)


_ANNOUNCED_LINKS: set = set()


def _announce(client):
    """The dashboard's address, once per cluster and process."""
    link = getattr(client, "dashboard_link", None)
    if link and link not in _ANNOUNCED_LINKS:
        _ANNOUNCED_LINKS.add(link)
        log.info(f"dask: dashboard at {link}")


def _client(client):
    """(client, owned) from a Client or an address."""
    if client is None:
        distributed = _require()
        try:
            return distributed.get_client(), False
        except ValueError:
            raise FastembError(f"distributed counting needs a Dask client or address ({param('dask')})") from None
    return connect(client)


def _worker_version():
    from fastemb import __version__
    return __version__


def _worker_addresses(client) -> list:
    """The workers' addresses now, sorted; waits (up to 60 s) while the cluster is between workers (one
    restarting after its nanny killed it). Used as placement hints only (tasks may run elsewhere)."""
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        try:
            client.wait_for_workers(1, timeout=60)
        except Exception:
            raise FastembError("the Dask cluster lost its workers (none back within 60s)") from None
        workers = sorted(client.scheduler_info()["workers"])
    return workers


def _check_workers(client):
    """Fail with one line when the cluster has no worker or its workers cannot import fastemb."""
    try:
        client.wait_for_workers(1, timeout=60)
    except Exception:
        raise FastembError("the Dask cluster has no workers (none joined within 60s)") from None
    try:
        versions = client.run(_worker_version)
    except Exception as e:
        raise FastembError(f"the Dask workers cannot run fastemb ({type(e).__name__}: {e}): install fastemb "
                           f"where the workers run") from None
    from fastemb import __version__
    other = sorted({v for v in versions.values() if v != __version__})
    if other:
        log.warning(f"warning: Dask workers run fastemb {', '.join(other)}, this process {__version__}")
    _announce(client)
    return len(versions)


def _worker_threads() -> int:
    """The threads this task may use: the worker's own thread count (1 outside a worker)."""
    try:
        from distributed import get_worker
        n = int(get_worker().state.nthreads)
    except Exception:
        n = 1
    from fastemb.parallel import max_threads
    return max(1, min(n, max_threads()))


# ------------------------------------------------------------------------------------------- shards
@dataclass(frozen=True)
class Shard:
    """Bytes [start, end) of the file at `url`: whole lines (a compressed file: the whole file, end = its
    stored size). `index` orders the shards of a corpus (file, then offset); `file` numbers the files."""
    url: str
    start: int
    end: int
    index: int
    file: int = 0
    compressed: bool = False
    last: bool = True          # the file's last shard

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def _is_url(p: str) -> bool:
    return "://" in p


def _compressed(path: str) -> bool:
    from fastemb.corpus import _OPENERS
    return os.path.splitext(path)[1].lower() in _OPENERS


def _list_files(paths, storage_options):
    """[(url, size)] in the local reader's order: directories expanded recursively (sorted, files of a
    directory before its subdirectories, hidden entries skipped)."""
    import fsspec
    from fastemb.corpus import Sentences, is_sentences, resolve_sources
    if is_sentences(paths) or isinstance(paths, Sentences):
        raise FastembError("distributed counting reads files (paths or fsspec URLs), not Python sentences")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise FastembError("no corpus given")
    out = []
    for p in paths:
        p = os.fspath(p)
        if p == "-":
            raise FastembError("distributed counting cannot read stdin: give files or URLs")
        if not _is_url(p):
            out.extend((os.path.abspath(s), os.path.getsize(s)) for s in resolve_sources([p]))
            continue
        try:
            fs, root = fsspec.core.url_to_fs(p, **(storage_options or {}))
            if fs.isdir(root):
                found = _walk(fs, root)
                if not found:
                    raise FileError(f"{p}: directory contains no text files")
                out.extend((fs.unstrip_protocol(name), size) for name, size in found)
            elif fs.exists(root):
                out.append((p, int(fs.size(root))))
            else:
                raise FileError(f"{p}: no such file or directory")
        except FastembError:
            raise
        except (OSError, ValueError, ImportError) as e:
            raise FileError(f"{p}: cannot open: {e}") from None
    return out


def _walk(fs, root):
    entries = sorted(fs.ls(root, detail=True), key=lambda e: os.path.basename(e["name"].rstrip("/")))
    files, dirs = [], []
    for e in entries:
        base = os.path.basename(e["name"].rstrip("/"))
        if base.startswith("."):
            continue
        (dirs if e["type"] == "directory" else files).append(e)
    out = [(e["name"], int(e["size"] or 0)) for e in files]
    for d in dirs:
        out.extend(_walk(fs, d["name"]))
    return out


def _open_raw(url, storage_options=None):
    if not _is_url(url):
        return open(url, "rb")
    import fsspec
    return fsspec.open(url, "rb", **(storage_options or {})).open()


def _cut_points(f, size, shard_bytes):
    """Offsets where shards start: 0, then after the first newline at or past each target. The first shard
    holds at least HEAD_BYTES (what the reader sniffs for an encoding)."""
    cuts = [0]
    target = max(shard_bytes, HEAD_BYTES)
    while target < size:
        f.seek(target - 1)
        pos, found = target - 1, -1
        while pos < size:
            block = f.read(min(1 << 16, size - pos))
            if not block:
                break
            i = block.find(b"\n")
            if i >= 0:
                found = pos + i
                break
            pos += len(block)
        if found < 0 or found + 1 >= size:
            break
        cuts.append(found + 1)
        target = found + 1 + shard_bytes
    return cuts


def shards(paths, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None) -> list:
    """The shards of a corpus: local paths, directories or fsspec URLs, in the local reader's order. Each
    file becomes byte ranges of about shard_bytes cut after a newline (found by reading a little past each
    target offset: a file is never read whole here); a compressed (.gz/.bz2/.xz) or UTF-16/32 file is
    one shard."""
    _require()
    if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, (int, np.integer)) or shard_bytes < 1:
        raise FastembError(f"{param('shard_bytes')} must be a positive number of bytes (got {shard_bytes!r})")
    from fastemb.corpus import _BOMS
    out = []
    for file_no, (url, size) in enumerate(_list_files(paths, storage_options)):
        if _compressed(url) or size <= max(shard_bytes, HEAD_BYTES):
            cuts = [0]
        else:
            try:
                with _open_raw(url, storage_options) as f:
                    head = f.read(4)
                    if any(head.startswith(b) for b, codec in _BOMS if codec != "utf-8"):
                        cuts = [0]
                    else:
                        cuts = _cut_points(f, size, int(shard_bytes))
            except OSError as e:
                raise FileError(f"{url}: cannot read: {e}") from None
        bounds = cuts + [size]
        for i in range(len(cuts)):
            out.append(Shard(url, bounds[i], bounds[i + 1], len(out), file_no, _compressed(url),
                             i == len(cuts) - 1))
    return out


class _Range:
    """Reads bytes [start, end) of a seekable binary file."""

    def __init__(self, f, start, end):
        self.f, self.left = f, end - start
        f.seek(start)

    def read(self, n=-1):
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def tell(self):
        return self.f.tell()


class _Prefixed:
    """A stream with bytes put in front: a UTF-8 byte-order mark in front of a shard that does not start
    its file makes the reader's sniffing settle on UTF-8 and skip exactly that mark."""

    def __init__(self, prefix, stream):
        self.prefix, self.stream = prefix, stream

    def read(self, n=-1):
        if self.prefix:
            head, self.prefix = self.prefix, b""
            return head + self.stream.read(max(1, n - len(head)) if n and n > 0 else n)
        return self.stream.read(n)


class _ShardReader:
    """The normalised byte chunks of one shard, exactly as CorpusReader yields them for the same bytes of
    the whole file (decoding, BOM at the file's start only, lower-casing, token pattern), ending with the
    b"\\n" the reader puts after each file."""

    def __init__(self, shard, params):
        from fastemb.corpus import CHUNK_BYTES, CorpusReader, Sentences
        self.shard = shard
        self.storage_options = params.get("storage_options")
        self.reader = CorpusReader(Sentences(()), lowercase=params["lowercase"],
                                   token_pattern=params["token_pattern"],
                                   chunk_bytes=params.get("chunk_bytes") or CHUNK_BYTES)
        self.bytes_done = 0

    @property
    def invalid_bytes(self):
        return self.reader.invalid_bytes

    def __iter__(self):
        from fastemb.corpus import _OPENERS
        s = self.shard
        try:
            raw = _open_raw(s.url, self.storage_options)
        except OSError as e:
            raise FileError(f"{s.url}: cannot open: {e.strerror or e}") from None
        with raw:
            if s.compressed:
                stream = _OPENERS[os.path.splitext(s.url)[1].lower()](raw)
            else:
                stream = _Range(raw, s.start, s.end)
                if s.start > 0:
                    stream = _Prefixed(b"\xef\xbb\xbf", stream)
            for chunk in self.reader._normalised_chunks(stream, s.url):
                self.bytes_done = raw.tell() - s.start if not s.compressed else 0
                yield chunk
        self.bytes_done = s.nbytes
        yield b"\n"


class _NoProgress:
    def update(self, *a, **k):
        pass


class _Collect:
    """A stand-in for the id files of vocab._scan_corpus: keeps what is written in memory."""
    name = ""

    def __init__(self):
        self.parts = []

    def write(self, view):
        self.parts.append(bytes(view))

    def array(self, dtype):
        return np.frombuffer(b"".join(self.parts), dtype=dtype)


# --------------------------------------------------------------------------------- vocabulary tasks
def _vocab_shard(shard, params, track):
    """Count one shard with the local tokenizer. With `track` (a min_count), also what lets the client
    count the shard's sentences that survive the final vocabulary (see _sentence_bases)."""
    from fastemb.kernels import tokenize as K
    from fastemb.vocab import _scan_corpus
    reader = _ShardReader(shard, params)
    ids = sents = None
    if track is not None:
        ids, sents = _Collect(), _Collect()
    table, pruned = _scan_corpus(reader, max_entries=params["max_entries"], ids_file=ids, sents_file=sents,
                                 max_sentence_length=params["max_sentence_length"], progress=_NoProgress())
    n = table.n
    arena = table.arena[:int(table.state[K.S_ARENA])].tobytes()
    words = [arena[o:o + k] for o, k in zip(table.e_off[:n].tolist(), table.e_len[:n].tolist())]
    meta = {"index": shard.index, "tokens": int(table.state[K.S_TOKENS]), "pruned": int(pruned),
            "truncated": int(table.state[K.S_TRUNCATED]), "invalid_bytes": int(reader.invalid_bytes),
            "url": shard.url, "sentences": None}
    if track is not None and not pruned:
        meta["sentences"] = _sentence_info(table, ids.array(np.uint32), sents.array(np.int64), words, track)
    first = (np.int64(shard.index) << np.int64(FIRST_BITS)) | table.e_pid[:n].astype(np.int64)
    return {"words": words, "counts": table.e_count[:n].copy(), "first": first, "meta": meta}


def _sentence_info(table, pids, ends, words, min_count):
    """Per shard: `m` = the largest local count among a sentence's tokens. A sentence whose m reaches
    min_count holds a word whose global count does too; the others ("at risk") are kept token by token
    (as words), few by construction: their tokens are all rarer than min_count in the shard."""
    n = table.n
    if len(ends) == 0:
        return {"n": 0, "m_values": np.zeros(0, np.int64), "m_counts": np.zeros(0, np.int64),
                "risk_words": [], "risk_tokens": np.zeros(0, np.int32), "risk_lengths": np.zeros(0, np.int64)}
    assert np.array_equal(table.e_pid[:n], np.arange(n))  # no pruning: provisional id = entry
    tok_counts = table.e_count[:n][pids]
    starts = np.concatenate(([0], ends[:-1]))
    m = np.maximum.reduceat(tok_counts, starts)
    risk = m < min_count
    values, counts = np.unique(m[~risk], return_counts=True)
    lengths = (ends - starts)[risk]
    risk_pids = pids[np.repeat(risk, ends - starts)]
    uniq, inverse = np.unique(risk_pids, return_inverse=True)
    return {"n": int(len(ends)), "m_values": values.astype(np.int64), "m_counts": counts.astype(np.int64),
            "risk_words": [words[e] for e in uniq.tolist()], "risk_tokens": inverse.astype(np.int32),
            "risk_lengths": lengths.astype(np.int64)}


def _take(result, key):
    return result[key]


def _merge_tables(*parts):
    """Exact merge of (words, counts, first) tables: counts add up, first occurrences take the minimum."""
    if len(parts) == 1:
        p = parts[0]
        return {"words": p["words"], "counts": p["counts"], "first": p["first"]}
    index = {}
    for p in parts:
        for w in p["words"]:
            if w not in index:
                index[w] = len(index)
    counts = np.zeros(len(index), np.int64)
    first = np.full(len(index), np.iinfo(np.int64).max, np.int64)
    for p in parts:
        ids = np.fromiter((index[w] for w in p["words"]), np.int64, len(p["words"]))
        np.add.at(counts, ids, p["counts"])
        np.minimum.at(first, ids, p["first"])
    return {"words": list(index), "counts": counts, "first": first}


def _select_words(table, min_count, max_vocab):
    """vocab._select on a merged table: count descending, ties by first occurrence."""
    counts, first = table["counts"], table["first"]
    keep = np.flatnonzero(counts >= min_count)
    order = keep[np.lexsort((first[keep], -counts[keep]))]
    n_eligible = len(order)
    if max_vocab is not None:
        order = order[:max_vocab]
    words = table["words"]
    return {"words": [words[i] for i in order.tolist()], "counts": counts[order].copy(),
            "distinct": len(words), "eligible": n_eligible}


def _tree(client, futures, fn, fanin=TREE_FANIN):
    """Reduce futures with fn(*group) in a tree, keeping their order (fn is associative, not commutative)."""
    while len(futures) > 1:
        futures = [client.submit(fn, *futures[i:i + fanin]) if len(futures[i:i + fanin]) > 1 else futures[i]
                   for i in range(0, len(futures), fanin)]
    return futures[0]


def _track(futures, label, tokens, unit_label="shards"):
    """Log tasks done/total and tokens/s while `futures` complete: `tokens` are the tokens of each task, or
    None when each result is a small dict holding them (then fetched)."""
    from distributed import as_completed
    total = len(futures)
    progress = Progress(label, total, unit="tokens")
    done, items = 0, 0
    pos = {f.key: i for i, f in enumerate(futures)}
    for f in as_completed(futures):
        done += 1
        if f.status == "error":
            f.result()  # raises the task's error (a FastembError stays one line)
        items += tokens[pos[f.key]] if tokens is not None else f.result()["tokens"]
        progress.update(done, items, extra=f"{done}/{total} {unit_label}")
    progress.done(extra=f"{total} {unit_label}")


def _corpus_params(copts, storage_options, memory_bytes=None):
    from fastemb.vocab import BYTES_PER_ENTRY
    memory = copts.memory_bytes if memory_bytes is None else int(memory_bytes)
    return {"lowercase": copts.lowercase, "token_pattern": copts.token_pattern,
            "max_sentence_length": copts.max_sentence_length, "memory": memory,
            "max_entries": max(1 << 10, memory // BYTES_PER_ENTRY), "storage_options": storage_options}


def _corpus_options(corpus_options, corpus_params):
    from fastemb.corpus import CorpusOptions
    o = corpus_options if corpus_options is not None else CorpusOptions(**corpus_params)
    if corpus_options is not None and corpus_params:
        o = o.replace(**corpus_params)
    return o


@dataclass
class _VocabPass:
    vocab: object            # fastemb.vocab.Vocab
    words: list              # the vocabulary as bytes
    shards: list
    metas: list
    eligible: int            # words reaching min_count (more than len(vocab) when max_vocab cut)


def _vocab_pass(client, shard_list, copts, params, track):
    distributed = _require()  # noqa: F841
    from fastemb.vocab import Vocab
    futs = [client.submit(_vocab_shard, s, params, copts.min_count if track else None) for s in shard_list]
    meta_futs = [client.submit(_take, f, "meta") for f in futs]
    _track(meta_futs, "vocab", None)
    metas = client.gather(meta_futs)
    root = _tree(client, futs, _merge_tables)
    selected = client.submit(_select_words, root, copts.min_count, copts.max_vocab).result()
    del futs, root
    raw_tokens = sum(m["tokens"] for m in metas)
    names = ", ".join(sorted({m["url"] for m in metas})[:3]) + (" ..." if len({m["url"] for m in metas}) > 3 else "")
    invalid = sum(m["invalid_bytes"] for m in metas)
    if invalid:
        where = [m["url"] for m in metas if m["invalid_bytes"]]
        where = list(dict.fromkeys(where))
        log.warning(f"warning: {invalid:,} invalid UTF-8 bytes replaced by U+FFFD (in {', '.join(where[:3])}"
                    f"{' ...' if len(where) > 3 else ''})")
    truncated = sum(m["truncated"] for m in metas)
    if truncated:
        from fastemb.corpus import MAX_TOKEN_BYTES
        log.warning(f"warning: {truncated:,} tokens longer than {MAX_TOKEN_BYTES} bytes were truncated")
    pruned = sum(m["pruned"] for m in metas)
    if pruned:
        log.warning(f"warning: {sum(1 for m in metas if m['pruned'])} shard(s) reached the memory budget and pruned "
                    f"{pruned:,} rare words: their counts are lower bounds and the vocabulary can differ from a "
                    f"local run (raise {param('memory')} or lower {param('shard_bytes')})")
    if raw_tokens == 0:
        raise FastembError(f"corpus is empty: no tokens in {names}")
    if not selected["words"]:
        raise FastembError(f"no word occurs at least {copts.min_count} times ({selected['distinct']:,} distinct words "
                           f"in {raw_tokens:,} tokens): lower {param('min_count')}")
    vocab = Vocab([w.decode("utf-8", errors="replace") for w in selected["words"]], selected["counts"],
                  raw_tokens=raw_tokens, distinct=selected["distinct"], pruned=pruned)
    log.info(f"vocabulary: {len(vocab):,} words of {selected['distinct']:,} distinct, {raw_tokens:,} tokens, "
             f"{len(shard_list)} shards")
    return _VocabPass(vocab, selected["words"], shard_list, metas, selected["eligible"])


def vocabulary(paths, corpus_options=None, client=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES,
               storage_options=None, **corpus_params):
    """The vocabulary of a corpus (paths, directories or fsspec URLs) counted on a Dask cluster: a
    fastemb.vocab.Vocab equal to build_vocab(paths, corpus_options) -- same words, order, counts and
    raw_tokens -- unless a shard had to prune its table (a warning says so). `client`: a
    dask.distributed Client or an address for `connect`; `corpus_options` a CorpusOptions or flat keyword
    arguments (min_count=5, ...)."""
    _require()
    copts = _corpus_options(corpus_options, corpus_params)
    shard_list = shards(paths, shard_bytes, storage_options)  # files checked before a cluster starts
    client, owned = _client(client)
    try:
        _check_workers(client)
        return _vocab_pass(client, shard_list, copts, _corpus_params(copts, storage_options), False).vocab
    finally:
        if owned:
            client.close()


# ---------------------------------------------------------------------------- encoding with a vocabulary
_TABLES = {}  # worker process cache: vocabulary key -> a StringTable holding the vocabulary as entries 0..V-1


def _vocab_table(key, text):
    """A tokenizer table whose entries 0..V-1 are the vocabulary words in order (a copy per call: the shard
    scan adds its out-of-vocabulary words behind them)."""
    from fastemb.kernels import tokenize as K
    from fastemb.corpus import MAX_TOKEN_BYTES
    from fastemb.vocab import StringTable
    base = _TABLES.get(key)
    if base is None:
        base = StringTable()
        buf = np.frombuffer(text, np.uint8)
        pos = 0
        empty32, empty64 = np.zeros(0, np.uint32), np.zeros(0, np.int64)
        while True:
            code, pos = K.scan(buf, pos, True, 1 << 30, MAX_TOKEN_BYTES, False, 1 << 62, base.slots, base.e_hash,
                               base.e_off, base.e_len, base.e_count, base.e_pid, base.arena, base.state, empty32,
                               empty64)
            if code == K.DONE:
                break
            base.grow(MAX_TOKEN_BYTES)
        base.state[K.S_EMITTED] = 0
        base.state[K.S_TOKENS] = 0
        base.state[K.S_SENT_LEN] = 0
        _TABLES.clear()
        _TABLES[key] = base
    t = StringTable.__new__(StringTable)
    for name in ("slots", "e_hash", "e_off", "e_len", "e_count", "e_pid", "arena", "state"):
        setattr(t, name, getattr(base, name).copy())
    return t


def _encoded_blocks(shard, params, vocab_key, vocab_text, n_words, block_tokens=1 << 20):
    """Yields (ids, ends) of the shard encoded with the final vocabulary: whole sentences, out-of-vocabulary
    tokens and then empty sentences dropped, as vocab._remap does; ends are block-relative."""
    from fastemb.kernels import tokenize as K
    from fastemb.corpus import MAX_TOKEN_BYTES
    table = _vocab_table(vocab_key, vocab_text)
    if table.n != n_words:
        raise AssertionError("vocabulary table does not match the vocabulary")
    st = table.state
    ids_buf = np.empty(block_tokens, np.uint32)
    sents_buf = np.empty(block_tokens // 8, np.int64)
    tail = np.zeros(0, np.uint32)  # provisional ids of the sentence not yet ended
    tail_start = 0                 # its position in the shard's token stream
    max_sentence = params["max_sentence_length"]

    def drain():
        nonlocal tail, tail_start
        n_out, n_s = int(st[K.S_OUT]), int(st[K.S_SENTS])
        pids = np.concatenate((tail, ids_buf[:n_out])) if len(tail) else ids_buf[:n_out].copy()
        ends = sents_buf[:n_s] - tail_start
        st[K.S_OUT] = 0
        st[K.S_SENTS] = 0
        cut = int(ends[-1]) if len(ends) else 0
        done, tail = pids[:cut], pids[cut:]
        tail_start += cut
        if not len(ends):
            return None
        keep = done < n_words
        cum = np.cumsum(keep)
        new_ends = cum[ends - 1]
        new_ends = new_ends[np.diff(new_ends, prepend=0) > 0]
        return done[keep], new_ends.astype(np.int64)

    carry = b""
    for chunk in _ShardReader(shard, params):
        data = carry + chunk if carry else chunk
        buf = np.frombuffer(data, dtype=np.uint8)
        pos = 0
        while True:
            code, pos = K.scan(buf, pos, False, max_sentence, MAX_TOKEN_BYTES, True, 1 << 62, table.slots,
                               table.e_hash, table.e_off, table.e_len, table.e_count, table.e_pid, table.arena,
                               st, ids_buf, sents_buf)
            if code == K.DONE:
                break
            if code == K.OUT_FULL:
                out = drain()
                if out is not None and len(out[1]):
                    yield out
            else:
                table.grow(MAX_TOKEN_BYTES)
        carry = data[pos:]
    if carry:
        raise AssertionError("tokenizer left an unfinished token")
    out = drain()
    if out is not None and len(out[1]):
        yield out
    if len(tail):
        raise AssertionError("a sentence was left unfinished at the end of a shard")


def _count_sentences(shard, params, vocab_key, vocab_text, n_words):
    """Sentences of the shard that keep a token under the final vocabulary."""
    return sum(len(ends) for _, ends in _encoded_blocks(shard, params, vocab_key, vocab_text, n_words))


def _sentence_bases(client, vp: _VocabPass, params, vocab_key, vocab_text_f, copts):
    """Global index of each shard's first encoded sentence. A sentence survives encoding when one of its
    tokens is in the vocabulary. From the vocabulary pass: sentences whose most frequent token (in the
    shard) reached min_count survive when no max_vocab cut applies (and when their token's count is above
    the last vocabulary word's otherwise); the at-risk ones are checked word by word. Shards left undecided
    (a pruned table, or a max_vocab cut between min_count and a sentence's counts) are re-tokenized."""
    index = set(vp.words)
    cut = vp.eligible > len(vp.words)
    c_last = int(vp.vocab.counts[-1])
    counts, recount = [], []
    for i, m in enumerate(vp.metas):
        info = m["sentences"]
        if info is None:
            counts.append(None)
            recount.append(i)
            continue
        sure = info["m_counts"]
        if cut and (info["m_counts"][info["m_values"] <= c_last].sum() > 0):
            counts.append(None)
            recount.append(i)
            continue
        n = int(sure.sum())
        if len(info["risk_lengths"]):
            known = np.fromiter((w in index for w in info["risk_words"]), bool, len(info["risk_words"]))
            hits = known[info["risk_tokens"]].astype(np.int64)
            starts = np.concatenate(([0], np.cumsum(info["risk_lengths"])[:-1]))
            n += int((np.add.reduceat(hits, starts) > 0).sum())
        counts.append(n)
    if recount:
        log.info(f"cooc: re-counting the sentences of {len(recount)} shard(s) under the final vocabulary")
        futs = [client.submit(_count_sentences, vp.shards[i], params, vocab_key, vocab_text_f, len(vp.words))
                for i in recount]
        for i, c in zip(recount, client.gather(futs)):
            counts[i] = c
    bases = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=bases[1:])
    return [int(b) for b in bases[:-1]], int(bases[-1])


# ---------------------------------------------------------------------------------- co-occurrence tasks
class _PairCounter:
    """One task's co-occurrence table (the local kernels, one worker): grows within a quarter of the memory
    budget, then turns into sorted fixed-point runs kept in memory (merged when they pass half of it)."""

    def __init__(self, n_rows, cooc, keep, seed, memory):
        from fastemb.cooc import FIXED_SCALE, distance_weights
        self.window, self.symmetric = cooc["window"], cooc["symmetric"]
        self.weights = np.rint(distance_weights(cooc["window"], cooc["weighting"]) * FIXED_SCALE).astype(np.int64)
        self.keep, self.seed, self.memory = keep, seed, memory
        self.col_bits = np.uint64(max(1, (n_rows - 1).bit_length()))
        self.key_bits = 2 * int(self.col_bits)
        self.cap = 0
        self.keys = self.vals = None
        self.used = np.zeros(1, np.int64)
        self.runs = []
        self.pairs_seen = 0

    def _alloc(self, cap):
        self.cap = cap
        self.keys = np.zeros((1, cap), np.uint64)
        self.vals = np.zeros((1, cap), np.int64)

    def _grow(self):
        from fastemb.cooc import _kernels
        K = _kernels()
        new_cap = 2 * self.cap
        nk, nv = np.zeros((1, new_cap), np.uint64), np.zeros((1, new_cap), np.int64)
        K.rehash(self.keys[0], self.vals[0], nk[0], nv[0], np.uint64(64 - (new_cap.bit_length() - 1)))
        self.keys, self.vals, self.cap = nk, nv, new_cap

    def _fits(self, cap):
        return cap * 16 <= self.memory // 4

    def _reserve(self, reserve):
        from fastemb.cooc import MAX_LOAD
        if self.keys is None:
            cap = 1 << max(16, (4 * reserve).bit_length())
            while not self._fits(cap) and MAX_LOAD * cap / 4 > reserve:
                cap //= 2
            self._alloc(cap)
        while reserve > MAX_LOAD * self.cap / 2:
            if not self._fits(2 * self.cap):
                raise FastembError(f"{param('memory')} {self.memory >> 20}MB is too small for sentences of "
                                   f"{reserve // self.window} tokens with window {self.window}: raise "
                                   f"{param('memory')} or lower {param('max_sentence_length')}")
            self._grow()

    def add(self, ids, ends, first):
        from fastemb.cooc import MAX_LOAD, _kernels
        K = _kernels()
        longest = int(np.max(np.diff(ends, prepend=0)))
        reserve = longest * self.window
        self._reserve(reserve)
        w_next = np.zeros(1, np.int64)
        w_stop = np.array([len(ends)], np.int64)
        while True:
            max_used = int(MAX_LOAD * self.cap) - reserve
            shift = np.uint64(64 - (self.cap.bit_length() - 1))
            K.count_pairs(ids, ends, first, w_next, w_stop, self.keep, self.seed, self.window, self.weights,
                          self.symmetric, self.col_bits, self.keys, self.vals, self.used, max_used, shift)
            if w_next[0] >= w_stop[0]:
                break
            if self._fits(2 * self.cap):
                self._grow()
            else:
                self._spill()

    def _spill(self):
        from fastemb.cooc import _extract_sorted
        if self.used[0] == 0:
            return
        k, v = _extract_sorted(self.keys[0], self.vals[0], self.symmetric, self.col_bits, self.key_bits)
        self.keys[0][:] = 0
        self.used[0] = 0
        self.runs.append((k, v))
        if sum(k.nbytes + v.nbytes for k, v in self.runs) + self.keys.nbytes + self.vals.nbytes > self.memory // 2:
            from fastemb.cooc import merge_runs
            self.runs = [merge_runs(self.runs, self.key_bits)]

    def finish(self, row_bounds):
        """The pairs as sorted, unique fixed-point (keys, vals), cut at row_bounds."""
        if self.keys is not None:
            self._spill()
        from fastemb.cooc import merge_runs
        self.keys = self.vals = None
        keys, vals = merge_runs(self.runs, self.key_bits)
        self.runs = []
        cuts = np.searchsorted(keys, np.asarray(row_bounds, np.uint64) << self.col_bits)
        return [(keys[a:b], vals[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _cooc_shard(shard, params, cooc, seed, vocab_key, vocab_text, keep, sentence_base, row_bounds):
    """A shard's co-occurrences in fixed point, one sorted (keys, vals) piece per row range."""
    from fastemb.parallel import numba_threads
    n_words = len(row_bounds) and int(row_bounds[-1])
    counter = _PairCounter(n_words, cooc, keep, seed, params["memory"])
    first = sentence_base
    tokens = 0
    with numba_threads(_worker_threads()):
        for ids, ends in _encoded_blocks(shard, params, vocab_key, vocab_text, n_words):
            counter.add(ids, ends, int(first))
            first += len(ends)
            tokens += len(ids)
        parts = counter.finish(row_bounds)
    return {"parts": parts, "sentences": first - sentence_base, "tokens": tokens,
            "bytes": [int(k.nbytes + v.nbytes) for k, v in parts]}


def _part(result, p):
    return result["parts"][p]


def _reduce_range(r0, r1, col_bits, key_bits, *pieces):
    """One row range of the matrix: the shards' pieces summed (exact integers), as CSR arrays."""
    from fastemb.cooc import csr_piece, merge_runs
    keys, vals = merge_runs(list(pieces), key_bits)
    return csr_piece(keys, vals, col_bits, r0, r1)


def _range_csr(piece, n_cols):
    import scipy.sparse as sp
    r0, r1, row_nnz, indices, data = piece
    indptr = np.zeros(r1 - r0 + 1, np.int64)
    np.cumsum(row_nnz, out=indptr[1:])
    return sp.csr_matrix((data, indices, indptr), shape=(r1 - r0, n_cols))


def _row_bounds(counts, window, symmetric, partitions):
    """Row ranges of about equal expected nonzeros (a row's pairs grow with its count, up to the width)."""
    n = len(counts)
    partitions = max(1, min(int(partitions), n))
    w = np.minimum(np.asarray(counts, np.float64) * window * (2 if symmetric else 1), n) + 1.0
    cum = np.cumsum(w)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, partitions) / partitions, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n - 1) if n > 1 else [], [n]))).astype(np.int64)
    return [int(b) for b in bounds]


@dataclass
class _CoocRun:
    vocab: object
    ranges: list              # futures of (r0, r1, row_nnz, indices, data), in row order
    bounds: list
    stats: dict


def _cooc_run(shard_list, copts, options, client, seed, partitions, storage_options):
    from fastemb.cooc import keep_probabilities
    t0 = time.perf_counter()
    n_workers = _check_workers(client)
    params = _corpus_params(copts, storage_options)
    sample = options.sample > 0
    vp = _vocab_pass(client, shard_list, copts, params, track=sample)
    vocab = vp.vocab
    n_rows = len(vocab)
    vocab_text = b"".join(w + b"\n" for w in vp.words)
    vocab_key = hashlib.sha256(vocab_text).hexdigest()
    text_f = _shared(client, vocab_text)
    if sample:
        bases, n_sentences = _sentence_bases(client, vp, params, vocab_key, text_f, copts)
    else:
        bases, n_sentences = [0] * len(shard_list), None
    keep = keep_probabilities(vocab.counts, options.sample)
    keep_f = _shared(client, keep)
    bounds = _row_bounds(vocab.counts, options.window, options.symmetric,
                         partitions if partitions is not None else 2 * n_workers)
    cooc = {"window": options.window, "weighting": options.weighting, "symmetric": options.symmetric}
    futs = [client.submit(_cooc_shard, s, params, cooc, seed, vocab_key, text_f, keep_f, b, bounds)
            for s, b in zip(shard_list, bases)]
    col_bits = max(1, (n_rows - 1).bit_length())
    workers = _worker_addresses(client)
    ranges = []
    for p in range(len(bounds) - 1):
        pieces = [client.submit(_part, f, p) for f in futs]
        ranges.append(client.submit(_reduce_range, bounds[p], bounds[p + 1], col_bits, 2 * col_bits, *pieces,
                                    workers=[workers[p % len(workers)]], allow_other_workers=True))
    shard_tokens = [m["tokens"] for m in vp.metas]
    _track(futs, "cooc", shard_tokens)
    info = client.gather([client.submit(_shard_stats, f) for f in futs])
    if sample and sum(i["sentences"] for i in info) != n_sentences:
        raise AssertionError("sentence counts of the vocabulary and co-occurrence passes differ")
    del futs
    stats = {"shards": len(shard_list), "partitions": len(bounds) - 1, "workers": n_workers,
             "shuffle_bytes": int(sum(sum(i["bytes"]) for i in info)),
             "vocab_tokens": int(sum(i["tokens"] for i in info)), "seconds_counting": time.perf_counter() - t0}
    return _CoocRun(vocab, ranges, bounds, stats)


def _shard_stats(result):
    return {"sentences": result["sentences"], "tokens": result["tokens"], "bytes": result["bytes"]}


def _cooc_options(cooc_options, cooc_params):
    from fastemb.cooc import CoocOptions
    o = cooc_options if cooc_options is not None else CoocOptions(**cooc_params)
    if cooc_options is not None and cooc_params:
        o = o.replace(**cooc_params)
    return o


def cooccurrences(paths, corpus_options=None, cooc_options=None, client=None, seed: int = 1, output=None,
                  partitions=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None, force=False,
                  attrs=None, stats=None):
    """Co-occurrence counts of a corpus (paths, directories or fsspec URLs) on a Dask cluster, bit-identical
    to the local `fastemb cooc` / cooc.cooccurrence() for the same corpus, options and seed (sample > 0
    included). `client`: a dask.distributed Client or an address for `connect`. Returns (words, counts,
    scipy CSR float32) or, with `output`, writes the HDF5 file (as `fastemb cooc` does; `force` overwrites;
    `attrs` adds root attributes) and returns the stats. `partitions`: row ranges, each reduced by one task
    (default: twice the workers). `stats`: a dict to fill (shards, partitions, shuffle_bytes, nnz...)."""
    _require()
    from fastemb.cooc import CsrCollector
    from fastemb.errors import OptionError
    copts = _corpus_options(corpus_options, {})
    options = _cooc_options(cooc_options, {})
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError("seed", f"must be a non-negative integer (got {seed!r})")
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, (int, np.integer))
                                   or partitions < 1):
        raise OptionError("partitions", f"must be at least 1 (got {partitions!r})")
    if output is not None:
        from fastemb.store import check_output
        check_output(output, force)
    shard_list = shards(paths, shard_bytes, storage_options)  # files checked before a cluster starts
    client, owned = _client(client)
    t0 = time.perf_counter()
    try:
        run = _cooc_run(shard_list, copts, options, client, int(seed), partitions, storage_options)
        v = run.vocab
        if output is None:
            sink = CsrCollector(len(v))
            nnz = _stream_ranges(client, run, sink)
            result = (v.words, v.counts, sink.matrix())
        else:
            from fastemb.store import CoocWriter
            corpus = [p if _is_url(os.fspath(p)) else os.path.abspath(p)
                      for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
            all_attrs = {**options.flat(), **copts.flat(), "seed": int(seed), "corpus_tokens": v.raw_tokens,
                         "vocab_tokens": run.stats["vocab_tokens"],
                         "corpus": json.dumps([os.fspath(c) for c in corpus]), **(attrs or {})}
            writer = CoocWriter(output, v.words, v.counts, all_attrs)
            ok = False
            try:
                nnz = _stream_ranges(client, run, writer)
                writer.f.attrs["nnz"] = nnz
                ok = True
            finally:
                writer.close(ok)
            result = None
        s = {**run.stats, "nnz": nnz, "words": len(v), "tokens": v.raw_tokens,
             "seconds": time.perf_counter() - t0}
        if output is not None:
            s["output"] = os.fspath(output)
            result = s
        if stats is not None:
            stats.update(s)
        return result
    finally:
        if owned:
            client.close()


def _stream_ranges(client, run, sink):
    """Append the row ranges to sink in order, each fetched when its turn comes and then released."""
    progress = Progress("cooc merge", len(run.ranges), unit="pairs")
    nnz = 0
    for i, f in enumerate(run.ranges):
        r0, r1, row_nnz, indices, data = f.result()
        sink.append(r0, r1, row_nnz, indices, data)
        nnz += len(indices)
        run.ranges[i] = None
        progress.update(i + 1, nnz, extra=f"{i + 1}/{len(run.ranges)} ranges")
    progress.done(extra=f"{nnz:,} nonzeros")
    return nnz


def cooccurrence_blocks(paths, corpus_options=None, cooc_options=None, client=None, seed: int = 1,
                        partitions=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES, storage_options=None,
                        stats=None):
    """The co-occurrence matrix left on the cluster: (Vocab, futures of its CSR row blocks in row order),
    for ppmi_svd without bringing the matrix to the client. `client` must be a Client (the futures live
    on it)."""
    _require()
    copts = _corpus_options(corpus_options, {})
    options = _cooc_options(cooc_options, {})
    shard_list = shards(paths, shard_bytes, storage_options)
    client, owned = _client(client)
    if owned:
        client.close()
        raise FastembError("cooccurrence_blocks needs a dask.distributed Client (its results stay on it)")
    run = _cooc_run(shard_list, copts, options, client, int(seed), partitions, storage_options)
    n = len(run.vocab)
    if stats is not None:
        stats.update(run.stats, words=n, tokens=run.vocab.raw_tokens)
    return run.vocab, [client.submit(_range_csr, f, n) for f in run.ranges]


# ----------------------------------------------------------------------------------------- PPMI-SVD
def _as_blocks(client, X, block_rows=None):
    """Futures of CSR row blocks: X is a list of futures or matrices (row blocks in order), or one matrix
    (cut into blocks of about equal nonzeros, one or two per worker)."""
    import scipy.sparse as sp
    from distributed import Future
    if isinstance(X, (list, tuple)):
        return [b if isinstance(b, Future) else _shared(client, sp.csr_matrix(b)) for b in X]
    X = sp.csr_matrix(X)
    n = X.shape[0]
    if block_rows is None:
        k = max(1, min(n, 2 * len(_worker_addresses(client))))
        cum = X.indptr[1:].astype(np.float64) + np.arange(1, n + 1)
        cuts = np.searchsorted(cum, cum[-1] * np.arange(1, k) / k) + 1
        bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n), [n])))
    else:
        bounds = np.unique(np.concatenate((np.arange(0, n, int(block_rows)), [n])))
    return [_shared(client, X[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _shape(b):
    return b.shape


def _col_sums(b):
    import scipy.sparse as sp
    X = sp.csr_matrix(b, dtype=np.float64)
    return np.asarray(X.sum(axis=0)).ravel()


def _add(*xs):
    out = np.array(xs[0], dtype=np.float64, copy=True)
    for x in xs[1:]:
        out += x
    return out


def _ppmi_block(b, col_smooth, log_total, shift):
    """ppmi.ppmi_matrix on one row block with the global column statistics."""
    import scipy.sparse as sp
    X = sp.csr_matrix(b, dtype=np.float64)
    X.eliminate_zeros()
    row_sum = np.asarray(X.sum(axis=1)).ravel()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    with np.errstate(divide="ignore"):
        pmi = (np.log(X.data) + log_total - np.log(row_sum[rows]) - np.log(col_smooth[X.indices]) - np.log(shift))
    keep = pmi > 0
    counts = np.bincount(rows[keep], minlength=X.shape[0])
    indptr = np.zeros(X.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((pmi[keep].astype(np.float32), X.indices[keep].astype(np.int32), indptr), shape=X.shape)


def _nnz(b):
    return int(b.nnz)


def ppmi_blocks(X, client, *, cds=0.75, shift=1.0, block_rows=None):
    """PPMI of a row-sharded co-occurrence matrix (ppmi.ppmi_matrix per block, column sums gathered):
    futures of float32 CSR row blocks."""
    _require()
    if shift <= 0:
        raise FastembError(f"{param('shift')} must be positive (got {shift})")
    blocks = _as_blocks(client, X, block_rows)
    col_sum = _tree(client, [client.submit(_col_sums, b) for b in blocks], _add).result()
    col_smooth = col_sum ** cds
    log_total = float(np.log(col_smooth.sum()))
    cs = _shared(client, col_smooth)
    return [client.submit(_ppmi_block, b, cs, log_total, shift) for b in blocks]


def _transpose(b):
    return b.T.tocsr()


def _matmat(b, B):
    """b @ B with the local kernel (float32), on the worker's threads."""
    from fastemb.models.ppmi import _matmat as local_matmat
    import scipy.sparse as sp
    return local_matmat(sp.csr_matrix(b, dtype=np.float32), B, _worker_threads())


def _qr(y):
    q, r = np.linalg.qr(y)
    return q, r


def _qr_r(qr):
    return qr[1]


def _qr_finish(qr, q2):
    return qr[0] @ q2


def _tsqr(client, Y):
    """Q of the tall matrix whose row blocks are Y (TSQR: QR per block, then QR of the stacked R factors)."""
    parts = [client.submit(_qr, y) for y in Y]
    Rs = client.gather([client.submit(_qr_r, p) for p in parts])
    q2 = np.linalg.qr(np.vstack(Rs))[0]
    out, o = [], 0
    for p, r in zip(parts, Rs):
        out.append(client.submit(_qr_finish, p, q2[o:o + r.shape[0]]))
        o += r.shape[0]
    return out


def _sum_products(client, Mt, Q):
    """Σ_i M_iᵀ Q_i (n_cols x width, float32)."""
    return _tree(client, [client.submit(_matmat, t, q) for t, q in zip(Mt, Q)], _add).result().astype(np.float32)


def _times(q, u):
    return q.astype(np.float64) @ u


def randomized_svd_blocks(blocks, k, client, *, n_iter=4, oversample=10, seed=1):
    """ppmi.randomized_svd on a matrix given as row blocks (futures or matrices, in row order): the same
    range finder with power iterations (same Gaussian start for the same seed), every product computed per
    block in a task, QR by TSQR. Returns (U, s, vt) like the local solver, up to rounding."""
    _require()
    blocks = _as_blocks(client, blocks)
    shapes = client.gather([client.submit(_shape, b) for b in blocks])
    n_rows, n_cols = sum(s[0] for s in shapes), shapes[0][1]
    keep = [i for i, s in enumerate(shapes) if s[0] > 0]
    blocks = [blocks[i] for i in keep]
    Mt = [client.submit(_transpose, b) for b in blocks]
    rng = np.random.default_rng(seed)
    width = min(k + oversample, min(n_rows, n_cols))
    G = rng.standard_normal((n_cols, width), dtype=np.float32)
    gf = _shared(client, G)
    Q = _tsqr(client, [client.submit(_matmat, b, gf) for b in blocks])
    for it in range(n_iter):
        Z = np.linalg.qr(_sum_products(client, Mt, Q))[0]
        zf = _shared(client, Z)
        Q = _tsqr(client, [client.submit(_matmat, b, zf) for b in blocks])
        log.info(f"svd: power iteration {it + 1}/{n_iter}")
    Bt = _sum_products(client, Mt, Q)
    u_b, s, vt = np.linalg.svd(Bt.T.astype(np.float64), full_matrices=False)
    uf = _shared(client, u_b[:, :k])
    U = np.vstack(client.gather([client.submit(_times, q, uf) for q in Q]))
    return U.astype(np.float32), s[:k].astype(np.float32), vt[:k].astype(np.float32)


def ppmi_svd(X, client=None, *, dim=100, cds=0.75, shift=1.0, seed=1, n_iter=4, oversample=10, block_rows=None):
    """PPMI-SVD on the cluster: X is a co-occurrence matrix (scipy sparse, cut into row blocks) or its row
    blocks (futures from cooccurrence_blocks, or matrices). Returns (U, s, vt) with the sign convention of
    ppmi.truncated_svd (the largest-magnitude entry of each left vector positive): singular values match
    truncated_svd(ppmi_matrix(X), dim, "randomized", seed) to rounding; ppmi.weighted_vectors makes vectors."""
    _require()
    client, owned = _client(client)
    try:
        M = ppmi_blocks(X, client, cds=cds, shift=shift, block_rows=block_rows)
        nnz = sum(client.gather([client.submit(_nnz, b) for b in M]))
        if nnz == 0:
            raise FastembError(f"no positive PMI entry: the corpus is too small (or {param('shift')} too large)")
        shapes = client.gather([client.submit(_shape, b) for b in M])
        n = min(sum(s[0] for s in shapes), shapes[0][1])
        if dim >= n:
            raise FastembError(f"{param('dim')} {dim} must be smaller than the vocabulary ({n} words)")
        log.info(f"ppmi: {nnz:,} positive entries in {len(M)} row blocks")
        U, s, vt = randomized_svd_blocks(M, dim, client, n_iter=n_iter, oversample=oversample, seed=seed)
        signs = np.sign(U[np.abs(U).argmax(axis=0), np.arange(U.shape[1])])
        signs[signs == 0] = 1
        return U * signs, s, vt * signs[:, None]
    finally:
        if owned:
            client.close()
