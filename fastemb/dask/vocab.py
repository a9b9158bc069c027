"""The vocabulary on a Dask cluster: every shard counted by the local tokenizer and table (vocab.scan_corpus),
the exact per-shard tables merged in a tree, the words selected by the local rule (vocab.vocabulary_order:
ties broken by global first occurrence, shards ordered by file and offset), so the result equals
`build_vocab` unless a shard's table had to be pruned by the memory budget (a warning says so). Also the
encoding of a shard with the final vocabulary, for the co-occurrence tasks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastemb.dask.cluster import check_workers, client_of, release, require, track, tree_reduce
from fastemb.dask.shards import DEFAULT_SHARD_BYTES, Collect, NoProgress, ShardReader, shards
from fastemb.errors import param
from fastemb.progress import log



def _vocab_shard(shard, params, track):
    """Count one shard with the local tokenizer. With `track` (a min_count), also what lets the client
    count the shard's sentences that survive the final vocabulary (see sentence_bases)."""
    from fastemb.kernels import tokenize as K
    from fastemb.vocab import FIRST_BITS, scan_corpus
    reader = ShardReader(shard, params)
    ids = sents = None
    if track is not None:
        ids, sents = Collect(), Collect()
    table, pruned = scan_corpus(reader, max_entries=params["max_entries"], ids_file=ids, sents_file=sents,
                                max_sentence_length=params["max_sentence_length"], progress=NoProgress())
    n = table.n
    meta = {"index": shard.index, "tokens": int(table.state[K.S_TOKENS]), "pruned": int(pruned),
            "truncated": int(table.state[K.S_TRUNCATED]), "invalid_bytes": int(reader.invalid_bytes),
            "url": shard.url, "sentences": None}
    if track is not None and not pruned:
        meta["sentences"] = _sentence_info(table, ids.array(np.uint32), sents.array(np.int64), table.raw_words(),
                                           track)
    first = (np.int64(shard.index) << np.int64(FIRST_BITS)) | table.e_pid[:n].astype(np.int64)
    return {"table": table.packed(first), "meta": meta}


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
    """Exact merge of the shards' tables (vocab.merge_tables: counts add up, first occurrences take the
    minimum)."""
    if len(parts) == 1:
        return {"table": parts[0]["table"]}
    from fastemb.vocab import merge_tables
    merged, _ = merge_tables([p["table"] for p in parts])
    return {"table": merged.packed()}


def _select_words(root, min_count, max_vocab):
    """The local selection rule (vocab.vocabulary_order) on the merged table."""
    from fastemb.vocab import vocabulary_order
    table = root["table"]
    n = table.n
    order, n_eligible = vocabulary_order(table.e_count[:n], table.e_pid[:n], min_count, max_vocab)
    words = table.raw_words()
    return {"words": [words[i] for i in order.tolist()], "counts": table.e_count[:n][order].copy(),
            "distinct": n, "eligible": n_eligible}


def corpus_params_of(copts, storage_options, memory_bytes=None):
    from fastemb.vocab import BYTES_PER_ENTRY
    memory = copts.memory_bytes if memory_bytes is None else int(memory_bytes)
    return {"lowercase": copts.lowercase, "token_pattern": copts.token_pattern,
            "max_sentence_length": copts.max_sentence_length, "memory": memory,
            "max_entries": max(1 << 10, memory // BYTES_PER_ENTRY), "storage_options": storage_options}


def corpus_options_of(corpus_options, corpus_params):
    from fastemb.corpus import CorpusOptions
    o = corpus_options if corpus_options is not None else CorpusOptions(**corpus_params)
    if corpus_options is not None and corpus_params:
        o = o.replace(**corpus_params)
    if o.phrases is not None:
        from fastemb.errors import OptionError
        raise OptionError("phrases", "is not supported with --dask yet (phrase the corpus first with "
                                     "`fastemb phrases --apply`)")
    return o


@dataclass
class VocabPass:
    vocab: object            # fastemb.vocab.Vocab
    words: list              # the vocabulary as bytes
    shards: list
    metas: list
    eligible: int            # words reaching min_count (more than len(vocab) when max_vocab cut)


def vocab_pass(client, shard_list, copts, params, track_sentences):
    require()
    from fastemb.vocab import Vocab, check_counted, warn_reading
    futs = [client.submit(_vocab_shard, s, params, copts.min_count if track_sentences else None) for s in shard_list]
    meta_futs = [client.submit(_take, f, "meta") for f in futs]
    track(meta_futs, "vocab", None)
    metas = client.gather(meta_futs)
    root = tree_reduce(client, futs, _merge_tables)
    selected = client.submit(_select_words, root, copts.min_count, copts.max_vocab).result()
    del futs, root
    raw_tokens = sum(m["tokens"] for m in metas)
    invalid_where = list(dict.fromkeys(m["url"] for m in metas if m["invalid_bytes"]))
    warn_reading(sum(m["invalid_bytes"] for m in metas), invalid_where, sum(m["truncated"] for m in metas))
    pruned = sum(m["pruned"] for m in metas)
    if pruned:
        log.warning(f"warning: {sum(1 for m in metas if m['pruned'])} shard(s) reached the memory budget and pruned "
                    f"{pruned:,} rare words: their counts are lower bounds and the vocabulary can differ from a "
                    f"local run (raise {param('memory')} or lower {param('shard_bytes')})")
    check_counted(raw_tokens, len(selected["words"]), selected["distinct"], copts.min_count,
                  list(dict.fromkeys(m["url"] for m in metas)))
    vocab = Vocab([w.decode("utf-8", errors="replace") for w in selected["words"]], selected["counts"],
                  raw_tokens=raw_tokens, distinct=selected["distinct"], pruned=pruned)
    log.info(f"vocabulary: {len(vocab):,} words of {selected['distinct']:,} distinct, {raw_tokens:,} tokens, "
             f"{len(shard_list)} shards")
    return VocabPass(vocab, selected["words"], shard_list, metas, selected["eligible"])


def vocabulary(paths, corpus_options=None, client=None, *, shard_bytes: int = DEFAULT_SHARD_BYTES,
               storage_options=None, **corpus_params):
    """The vocabulary of a corpus (paths, directories or fsspec URLs) counted on a Dask cluster: a
    fastemb.vocab.Vocab equal to build_vocab(paths, corpus_options) -- same words, order, counts and
    raw_tokens -- unless a shard had to prune its table (a warning says so). `client`: a
    dask.distributed Client or an address for `connect`; `corpus_options` a CorpusOptions or flat keyword
    arguments (min_count=5, ...)."""
    require()
    copts = corpus_options_of(corpus_options, corpus_params)
    shard_list = shards(paths, shard_bytes, storage_options)  # files checked before a cluster starts
    client, owned = client_of(client)
    try:
        check_workers(client)
        return vocab_pass(client, shard_list, copts, corpus_params_of(copts, storage_options), False).vocab
    finally:
        if owned:
            release(client)


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
    return base.copy()


def encoded_blocks(shard, params, vocab_key, vocab_text, n_words, block_tokens=1 << 20):
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
    for chunk in ShardReader(shard, params):
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
    return sum(len(ends) for _, ends in encoded_blocks(shard, params, vocab_key, vocab_text, n_words))


def sentence_bases(client, vp: VocabPass, params, vocab_key, vocab_text_f, copts):
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
