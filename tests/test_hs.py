"""Hierarchical softmax: the Huffman tree against a heap-built reference, the kernel's gradient step against numpy,
training with --hs (alone and with negative sampling) on planted and real text."""
import heapq
import math

import numpy as np
import pytest

import fastemb
from fastemb.models.huffman import build
from fastemb.models.w2v_dims import kernels
from conftest import SAMPLE, assert_one_line_error, category_purity, planted_corpus, run_cli
from test_word2vec import DIMS, NLS, SIG, assert_groups_recovered, negatives_reference, rand_params, sigmoid, table_sigmoid


def heap_huffman_lengths(counts):
    """Code lengths of a textbook heap-based Huffman construction (the slow oracle)."""
    heap = [(float(c), i, (i,)) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    lengths = np.zeros(len(counts), np.int64)
    tie = len(counts)
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        for leaf in a[2] + b[2]:
            lengths[leaf] += 1
        heapq.heappush(heap, (a[0] + b[0], tie, a[2] + b[2]))
        tie += 1
    return lengths


def paths(tree):
    return [tuple(tree.codes[w, :tree.lengths[w]]) for w in range(len(tree.lengths))]


@pytest.mark.parametrize("seed", range(6))
def test_huffman_codes_are_prefix_free_and_optimal(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 400))
    counts = rng.zipf(1.5, V).astype(np.int64)
    if seed % 2:
        counts = np.sort(counts)[::-1]  # the vocabulary's own order (descending), and a shuffled one
    tree = build(counts)
    codes = sorted(paths(tree))
    assert len(set(codes)) == V
    for a, b in zip(codes, codes[1:]):  # sorted: a prefix of b would sit right before it
        assert b[:len(a)] != a
    ref = heap_huffman_lengths(counts)
    assert (counts * tree.lengths).sum() == (counts * ref).sum()  # optimal: the same weighted length
    if len(set(counts.tolist())) == V:  # no ties: the lengths themselves are unique
        assert np.array_equal(tree.lengths, ref)
    # every internal node is one row 0..V-2, the root first on every path, and a node has one parent path
    assert tree.points.min() >= 0 and tree.points.max() == V - 2 and np.all(tree.points[:, 0] == V - 2)
    prefix_of = {}
    for w in range(V):
        for d in range(tree.lengths[w]):
            key = (int(tree.points[w, d]))
            prefix = tuple(tree.codes[w, :d])
            assert prefix_of.setdefault(key, prefix) == prefix


def test_huffman_small_cases_and_bad_counts():
    assert paths(build([5, 3])) in ([(0,), (1,)], [(1,), (0,)])
    one = build([7])
    assert one.lengths.tolist() == [0]
    with pytest.raises(ValueError):
        build([3, -1])
    with pytest.raises(ValueError):
        build([])


def hs_reference(v, nodes, points, codes, alpha):
    """word2vec.c's hierarchical-softmax step in numpy: returns (new v, new nodes, loss)."""
    nodes = nodes.copy()
    e = np.zeros_like(v)
    loss = 0.0
    for p, c in zip(points, codes):
        f = float(v @ nodes[p])
        g = (1 - c - table_sigmoid(f)) * alpha
        loss += -math.log(sigmoid(f)) if c == 0 else -math.log(1 - sigmoid(f))
        e += g * nodes[p]
        nodes[p] += g * v
    return v + e, nodes, loss


@pytest.mark.parametrize("dim", DIMS)
def test_hs_skipgram_step_matches_numpy(dim):
    syn0, nodes = rand_params(n=6, dim=dim)
    s0, n0 = syn0.copy(), nodes.copy()
    tree = build([50, 20, 10, 8, 5, 1])
    word, context, alpha = 4, 1, np.float32(0.1)
    L = tree.lengths[word]
    loss = kernels(dim).sg_pair_hs(syn0, nodes, context, tree.points[word], tree.codes[word], L, alpha, SIG, NLS,
                                   np.zeros(dim, np.float32))
    v, n_ref, ref_loss = hs_reference(s0[context], n0, tree.points[word, :L], tree.codes[word, :L], alpha)
    s0[context] = v
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nodes, n_ref, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(ref_loss, rel=2e-2)


@pytest.mark.parametrize("dim", DIMS)
def test_hs_window_matches_numpy_matrix_step(dim):
    """HogBatch's form: every context of the window predicts the centre word's path, gradients from the
    values before the update, applied once per row (a repeated context word gets both updates)."""
    syn0 = rand_params(n=6, dim=dim, seed=3)[0]
    nodes = rand_params(n=5, dim=dim, seed=4)[0]
    s0, n0 = syn0.copy(), nodes.copy()
    tree = build([50, 20, 10, 8, 5, 1])
    word, ctx, alpha = 5, np.array([1, 3, 4, 1]), np.float32(0.05)
    L = tree.lengths[word]
    loss = kernels(dim).sg_window_shared(syn0, nodes, ctx, 4, tree.points[word], L, tree.codes[word], alpha, SIG, NLS,
                                     np.zeros((4, L), np.float32), np.zeros((4, dim), np.float32),
                                     np.zeros((L, dim), np.float32))
    pts, labels = tree.points[word, :L], 1.0 - tree.codes[word, :L]
    S = s0[ctx] @ n0[pts].T
    Gr = (labels - np.vectorize(table_sigmoid)(S)) * alpha
    d_ctx, d_out = Gr @ n0[pts], Gr.T @ s0[ctx]
    np.add.at(s0, ctx, d_ctx)
    np.add.at(n0, pts, d_out)
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nodes, n0, rtol=1e-5, atol=1e-6)
    ref_loss = -(np.log(sigmoid(S)) * labels + np.log(1 - sigmoid(S)) * (1 - labels)).sum()
    assert loss == pytest.approx(ref_loss, rel=2e-2)


@pytest.mark.parametrize("dim", DIMS)
def test_hs_cbow_step_with_negatives_matches_numpy(dim):
    """CBOW with both output layers (word2vec.c with -hs 1 -negative k): one hidden error from both."""
    syn0, syn1 = rand_params(n=6, dim=dim, seed=1)
    nodes = rand_params(n=5, dim=dim, seed=2)[0]
    s0, s1, n0 = syn0.copy(), syn1.copy(), nodes.copy()
    tree = build([50, 20, 10, 8, 5, 1])
    ctx, out, word, alpha = np.array([0, 1, 3]), np.array([2, 4, 5]), 2, np.float32(0.05)
    L = tree.lengths[word]
    kernels(dim).cbow_window(syn0, syn1, nodes, ctx, 3, out, 3, tree.points[word], tree.codes[word], L, alpha, True,
                             SIG, NLS, np.zeros(dim, np.float32), np.zeros(dim, np.float32))
    h = s0[ctx].mean(0)
    after_hs, n_ref, _ = hs_reference(h, n0, tree.points[word, :L], tree.codes[word, :L], alpha)
    s0[ctx] += after_hs - h + negatives_reference(h, s1, out, alpha)
    np.testing.assert_allclose(syn0, s0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(syn1, s1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nodes, n_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo,negative,shared", [("sgns", 0, True), ("sgns", 0, False), ("cbow", 0, True),
                                                 ("sgns", 5, True)])
def test_hs_recovers_planted_groups(tmp_path, algo, negative, shared):
    groups = planted_corpus(tmp_path / "p.txt")
    emb = fastemb.train(str(tmp_path / "p.txt"), algo, dim=20, epochs=5, sample=0, threads=1, hs=True,
                        negative=negative, **({"shared_negatives": shared} if algo == "sgns" else {}))
    assert_groups_recovered(emb, groups)
    if negative == 0:
        # a centre word is uniform over its group of 6 given any context: the loss reaches log 6 (it starts at
        # the tree's ~5 bits), and there are no per-word context vectors: the file says so
        assert emb.attrs["loss"][-1] < math.log(6) + 0.1
        assert emb.context_vectors is None and emb.attrs["add_contexts"] is False


@pytest.mark.slow
def test_hs_loss_starts_at_the_tree_entropy_and_falls_on_real_text():
    frozen = fastemb.FrozenLoss(max_tokens=300_000)
    emb = fastemb.train(SAMPLE, "sgns", hs=True, negative=0, epochs=3, threads=2, callbacks=[frozen])
    assert category_purity(emb) > 0.8
    assert all(b < a for a, b in zip(frozen.losses, frozen.losses[1:])), frozen.losses
    # the untrained model's loss is mean path length · log 2, about log2(V) bits (V ~ 5,000 here)
    assert 5 * math.log(2) < emb.attrs["loss"][0] < 14 * math.log(2)


@pytest.mark.slow
def test_hs_checkpoint_resume_and_continue(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=600)
    out = tmp_path / "v.h5"
    rc, _, err = run_cli("train", tmp_path / "p.txt", "-o", out, "--dim", "8", "--epochs", "2", "--hs",
                         "--negative", "0", "--checkpoint-every", "1", "--threads", "1", "--quiet")
    assert rc == 0, err
    a = fastemb.load(out)
    assert a.attrs["hs"] is True and a.attrs["negative"] == 0
    rc, _, err = run_cli("train", tmp_path / "p.txt", "--init", out, "-o", tmp_path / "w.h5", "--dim", "8",
                         "--epochs", "1", "--hs", "--negative", "0", "--quiet")
    assert rc == 0, err
    one = fastemb.train(str(tmp_path / "p.txt"), dim=8, epochs=2, hs=True, negative=0, threads=1)
    assert np.array_equal(one.vectors, a.vectors)  # checkpointing does not change a 1-thread run


def test_negative_zero_needs_hs(tmp_path, kjv_small):
    rc, _, err = run_cli("train", kjv_small, "-o", tmp_path / "v.h5", "--negative", "0")
    assert_one_line_error(rc, err, contains="--hs")
    with pytest.raises(fastemb.OptionError, match="hs"):
        fastemb.train(kjv_small, negative=0)
