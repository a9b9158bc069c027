"""Distributed counting (fastemb.dask) against the local path, on a LocalCluster of 2 processes."""
import builtins
import gzip
import os

import numpy as np
import pytest

from conftest import sample_lines
from fastemb import dask as D
from fastemb.corpus import CorpusOptions
from fastemb.cooc import CoocOptions, cooccurrences as local_cooccurrences
from fastemb.errors import FastembError
from fastemb.vocab import build_vocab

pytestmark = pytest.mark.slow  # quality floors and Dask clusters: `pytest -m "not slow"` skips them


def test_one_line_error_without_dask(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    for call in (lambda: D.connect("local:2"), lambda: D.vocabulary([str(tmp_path)], client="local:1"),
                 lambda: D.cooccurrences([str(tmp_path)], client="local:1"), lambda: D.shards([str(tmp_path)])):
        with pytest.raises(FastembError) as e:
            call()
        assert str(e.value) == "distributed counting needs dask: pip install 'fastemb[dask]'"
        assert "\n" not in str(e.value)


distributed = pytest.importorskip("distributed")
pytest.importorskip("fsspec")


@pytest.fixture(scope="module")
def client():
    c = distributed.Client(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    yield c
    c.close()


def _hostile_bytes(n_lines, offset=0):
    """KJV verses with what the reader must treat exactly as locally: a BOM (only at the file's start),
    U+FEFF starting later lines, CRLF, empty lines, sentences of rare words only (empty once encoded),
    Unicode spaces, invalid UTF-8, upper case."""
    out = [b"\xef\xbb\xbf"]
    for i, line in enumerate(sample_lines(n_lines + offset)[offset:]):
        r = i % 11
        if r == 0:
            out.append(f"zq{i} xv{i} zq{i}\n".encode())
        elif r == 1:
            out.append(line.rstrip("\n").encode() + b"\r\n")
        elif r == 2:
            out.append(b"\n")
        elif r == 3:
            out.append(("\ufeff" + line).encode())
        elif r == 4:
            out.append(line.replace(" ", "\u00a0", 2).replace(" ", "\u3000", 1).encode())
        elif r == 5:
            out.append(b"caf\xc3 \xe9t\xe9 " + line.encode())
        elif r == 6:
            out.append(line.upper().encode())
        else:
            out.append(line.encode())
    return b"".join(out)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A directory: two plain files, a gzipped one in a subdirectory, a file without a final newline."""
    root = tmp_path_factory.mktemp("dist")
    d = root / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(_hostile_bytes(700))
    (d / "b.txt").write_text("".join(sample_lines(1300)[700:]), encoding="utf-8")
    with gzip.open(d / "sub" / "c.txt.gz", "wb") as f:
        f.write(_hostile_bytes(300, offset=1300))
    (d / "z.txt").write_text("the last file has no final newline", encoding="utf-8")
    (d / ".hidden").write_text("never read", encoding="utf-8")
    return str(d)


def _same_vocab(a, b):
    assert a.words == b.words
    assert np.array_equal(a.counts, b.counts)
    assert (a.raw_tokens, a.distinct, a.pruned) == (b.raw_tokens, b.distinct, b.pruned)


def _same_matrix(got, ref):
    (w1, c1, m1), (w2, c2, m2) = got, ref
    assert w1 == w2 and np.array_equal(c1, c2)
    assert m1.shape == m2.shape
    assert np.array_equal(m1.indptr, m2.indptr) and np.array_equal(m1.indices, m2.indices)
    assert np.array_equal(m1.data.view(np.uint32), m2.data.view(np.uint32))  # bitwise


def test_shards_cut_inside_lines_end_at_line_boundaries(corpus):
    path = os.path.join(corpus, "a.txt")
    data = open(path, "rb").read()
    parts = D.shards([path], shard_bytes=100)
    assert len(parts) > 50
    assert parts[0].start == 0 and parts[-1].end == len(data) and parts[-1].last
    assert parts[0].nbytes >= D.HEAD_BYTES  # the reader sniffs the file's head in one shard
    for p, q in zip(parts, parts[1:]):
        assert p.end == q.start and not p.last
        assert data[q.start - 1:q.start] == b"\n"  # a shard starts after a newline and ends with one
    assert [p.index for p in parts] == list(range(len(parts)))
    everything = D.shards([corpus], shard_bytes=100)
    names = [os.path.relpath(s.url, corpus) for s in everything]
    assert list(dict.fromkeys(names)) == ["a.txt", "b.txt", "z.txt", os.path.join("sub", "c.txt.gz")]
    assert sum(1 for s in everything if s.compressed) == 1  # a compressed file is one shard


@pytest.mark.parametrize("shard_bytes, opts", [
    (D.DEFAULT_SHARD_BYTES, dict(min_count=3)),
    (1000, dict(min_count=1)),
    (2000, dict(min_count=2, max_vocab=500, lowercase=True)),
    (3000, dict(min_count=2, token_pattern=r"[a-z]+", max_sentence_length=7)),
])
def test_vocabulary_equals_local(client, corpus, shard_bytes, opts):
    copts = CorpusOptions(**opts)
    _same_vocab(D.vocabulary([corpus], copts, client, shard_bytes=shard_bytes), build_vocab([corpus], copts))


@pytest.mark.parametrize("window, weighting, symmetric, sample, opts, shard_bytes", [
    (2, "dynamic", True, 0.0, dict(min_count=3), 2000),
    (5, "harmonic", True, 1e-3, dict(min_count=3), 1000),
    (5, "uniform", False, 1e-3, dict(min_count=2, max_sentence_length=7), 3000),
    (2, "harmonic", False, 0.0, dict(min_count=1), D.DEFAULT_SHARD_BYTES),
    (5, "dynamic", True, 1e-3, dict(min_count=2, max_vocab=300, lowercase=True), 2500),
])
def test_cooccurrences_bitwise_equal_to_local(client, corpus, window, weighting, symmetric, sample, opts,
                                              shard_bytes):
    copts = CorpusOptions(**opts)
    cooc = CoocOptions(window=window, weighting=weighting, symmetric=symmetric, sample=sample)
    stats = {}
    got = D.cooccurrences([corpus], copts, cooc, client, seed=7, shard_bytes=shard_bytes, partitions=3,
                          stats=stats)
    ref = local_cooccurrences([corpus], seed=7, threads=2, window=window, weighting=weighting,
                              symmetric=symmetric, sample=sample, **opts)
    _same_matrix(got, ref)
    assert stats["partitions"] == 3 and stats["shuffle_bytes"] > 0 and stats["nnz"] == ref[2].nnz


def test_sentence_offsets_do_not_depend_on_sharding(client, corpus):
    """Subsampling is seeded by the global sentence index: any shard size gives the same matrix."""
    copts, cooc = CorpusOptions(min_count=4), CoocOptions(window=3, sample=1e-2)
    a = D.cooccurrences([corpus], copts, cooc, client, seed=3, shard_bytes=1000, partitions=1)
    b = D.cooccurrences([corpus], copts, cooc, client, seed=3, shard_bytes=D.DEFAULT_SHARD_BYTES, partitions=5)
    _same_matrix(a, b)
    c = D.cooccurrences([corpus], copts, cooc, client, seed=4, shard_bytes=5000)
    assert (a[2] != c[2]).nnz > 0  # and the seed matters


def test_hdf5_output(client, corpus, tmp_path):
    from fastemb.store import load_cooc
    out = str(tmp_path / "cooc.h5")
    copts, cooc = CorpusOptions(min_count=3), CoocOptions(window=4, sample=1e-3)
    stats = D.cooccurrences([corpus], copts, cooc, client, seed=2, output=out, shard_bytes=2000)
    words, counts, m, attrs = load_cooc(out)
    _same_matrix((words, counts, m), local_cooccurrences([corpus], seed=2, window=4, sample=1e-3, min_count=3))
    assert stats["output"] == out and attrs["nnz"] == m.nnz and attrs["window"] == 4
    with pytest.raises(FastembError, match="output exists"):
        D.cooccurrences([corpus], copts, cooc, client, output=out)


def _fill_memory_fs(files):
    import fsspec
    fs = fsspec.filesystem("memory")
    for name, data in files.items():
        fs.pipe(name, data)
    return sorted(files)


def test_fsspec_memory_corpus(client, corpus, tmp_path):
    files = {}
    for name in ("a.txt", "b.txt"):
        files[f"/fastemb-test/{name}"] = open(os.path.join(corpus, name), "rb").read()
    files["/fastemb-test/sub/c.txt.gz"] = open(os.path.join(corpus, "sub", "c.txt.gz"), "rb").read()
    _fill_memory_fs(files)
    client.run(_fill_memory_fs, files)  # memory:// lives in each process
    local = [os.path.join(corpus, "a.txt"), os.path.join(corpus, "b.txt"), os.path.join(corpus, "sub", "c.txt.gz")]
    copts, cooc = CorpusOptions(min_count=2), CoocOptions(window=3, sample=1e-3)
    _same_vocab(D.vocabulary(["memory://fastemb-test"], copts, client, shard_bytes=2000), build_vocab(local, copts))
    got = D.cooccurrences(["memory://fastemb-test"], copts, cooc, client, seed=5, shard_bytes=2000)
    _same_matrix(got, local_cooccurrences(local, seed=5, window=3, sample=1e-3, min_count=2))


def test_worker_killed_mid_count(client, corpus, tmp_path):
    """A worker process dies while counting a shard: Dask reruns its tasks elsewhere, same matrix."""
    marker = str(tmp_path / "killed")

    class KillOnce(distributed.WorkerPlugin):
        name = "fastemb-kill-once"

        def transition(self, key, start, finish, **kwargs):
            k = key if isinstance(key, str) else str(key)
            if finish == "executing" and k.startswith("_cooc_shard"):
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    return
                os._exit(1)

    copts, cooc = CorpusOptions(min_count=2), CoocOptions(window=5, sample=1e-3)
    ref = local_cooccurrences([corpus], seed=11, window=5, sample=1e-3, min_count=2)
    client.register_plugin(KillOnce())
    try:
        got = D.cooccurrences([corpus], copts, cooc, client, seed=11, shard_bytes=3000)
    finally:
        client.unregister_worker_plugin("fastemb-kill-once")
    assert os.path.exists(marker)  # a worker did die
    _same_matrix(got, ref)
    client.wait_for_workers(2, timeout=60)


def test_ppmi_svd_matches_local_solver(client, corpus):
    from fastemb.models.ppmi import ppmi_matrix, truncated_svd
    words, counts, X = local_cooccurrences([corpus], window=2, weighting="dynamic", min_count=2)
    U0, s0, vt0, _ = truncated_svd(ppmi_matrix(X), 12, "randomized", seed=3)
    for source in ("matrix", "blocks"):
        if source == "matrix":
            U, s, vt = D.ppmi_svd(X, client, dim=12, seed=3)
        else:
            vocab, blocks = D.cooccurrence_blocks([corpus], CorpusOptions(min_count=2),
                                                  CoocOptions(window=2, weighting="dynamic"), client,
                                                  partitions=3, shard_bytes=3000)
            assert vocab.words == words
            U, s, vt = D.ppmi_svd(blocks, client, dim=12, seed=3)
        np.testing.assert_allclose(s, s0, rtol=1e-4)
        assert U.shape == U0.shape and vt.shape == vt0.shape
        # vectors equal up to sign (the same sign convention makes them equal outright)
        for j in range(12):
            sign = np.sign(U[:, j] @ U0[:, j])
            np.testing.assert_allclose(sign * U[:, j], U0[:, j], atol=2e-3)
            np.testing.assert_allclose(sign * vt[j], vt0[j], atol=2e-3)


def test_connect_errors(client):
    with pytest.raises(FastembError, match="local:N"):
        D.connect("local:0")
    c, owned = D.connect(client)
    assert c is client and not owned
    with pytest.raises(FastembError, match=r"distributed counting reads files"):
        D.vocabulary(iter([["a", "b"]]), None, client)
    with pytest.raises(FastembError, match="no such file"):
        D.shards(["/nonexistent/fastemb/corpus.txt"])


def test_train_glove_with_client_equals_local(client, corpus):
    import fastemb
    opts = dict(algo="glove", dim=8, epochs=2, window=3, min_count=2, threads=1, seed=5)
    local = fastemb.train([corpus], **opts)
    remote = fastemb.train([corpus], client=client, **opts)
    assert remote.words == local.words
    assert np.array_equal(remote.vectors, local.vectors)  # the same matrix, the same single-thread training
    assert remote.attrs["dask_shards"] >= 1


def test_train_ppmi_with_client_factors_on_the_cluster(client, corpus):
    import fastemb
    opts = dict(algo="ppmi-svd", dim=10, min_count=2, seed=3, svd="randomized")
    local = fastemb.train([corpus], **opts)
    remote = fastemb.train([corpus], client=client, **opts)
    assert remote.words == local.words and remote.attrs["svd"] == "randomized (dask)"
    np.testing.assert_allclose(remote.svd["s"], local.svd["s"], rtol=1e-4)
    cos = np.abs(np.sum(remote.svd["u"] * local.svd["u"], axis=0))
    assert cos.min() > 0.999


def test_train_client_refusals(client, corpus):
    import fastemb
    from fastemb.errors import OptionError
    with pytest.raises(OptionError, match="trains on one machine"):
        fastemb.train([corpus], algo="sgns", client=client)
    with pytest.raises(OptionError, match="arpack"):
        fastemb.train([corpus], algo="ppmi-svd", svd="arpack", client=client)
    with pytest.raises(OptionError, match="not stdin or Python sentences"):
        fastemb.train([["a", "b"]] * 10, algo="glove", client=client)


def test_cli_dask_vocab_and_cooc_equal_local(client, corpus, tmp_path):
    from click.testing import CliRunner
    from fastemb.cli.main import cli
    from fastemb.store import load_cooc
    address = client.scheduler.address
    r = CliRunner()
    for name, extra in (("local", []), ("dask", ["--dask", address])):
        res = r.invoke(cli, ["vocab", corpus, "-o", str(tmp_path / f"{name}.tsv"), "--min-count", "2", *extra])
        assert res.exit_code == 0, res.output
        res = r.invoke(cli, ["cooc", corpus, "-o", str(tmp_path / f"{name}.h5"), "--min-count", "2", "--window", "3",
                             "--sample", "1e-3", *extra])
        assert res.exit_code == 0, res.output
    assert (tmp_path / "local.tsv").read_bytes() == (tmp_path / "dask.tsv").read_bytes()
    _same_matrix(load_cooc(str(tmp_path / "dask.h5"))[:3], load_cooc(str(tmp_path / "local.h5"))[:3])
