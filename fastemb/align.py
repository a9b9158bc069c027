"""Translation-matrix alignment of two embedding spaces (Mikolov et al. 2013; Xing et al. 2015;
Artetxe et al. 2016; Faruqui & Dyer 2014) and its evaluation with nearest-neighbour and CSLS retrieval
(Conneau et al. 2018)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastemb.errors import FastembError, FileError, OptionError, param
from fastemb.ranking import top_k, top_k_rows
from fastemb.seeding import generator

METHODS = ("gd", "lstsq", "procrustes", "cca", "vecmap")


def read_lexicon(path):
    """TSV (or whitespace-separated) source/target word pairs, one per line; '#' comments skipped."""
    from fastemb.files import read_text_lines
    pairs = []
    for n, line in read_text_lines(path, "lexicon"):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
            raise FileError(f"{path}:{n}: expected 'source<TAB>target'")
        pairs.append((parts[0].strip(), parts[1].strip()))
    if not pairs:
        raise FileError(f"{path}: no word pairs")
    return pairs


def _unit(M):
    return M / np.maximum(np.linalg.norm(M, axis=1, keepdims=True), 1e-12)


@dataclass
class Alignment:
    """Maps source vectors into the space where they are compared with (projected) target vectors."""
    R: np.ndarray                       # d_src x d_out
    method: str
    normalize: bool = False
    center: bool = False
    src_mean: np.ndarray | None = None
    tgt_mean: np.ndarray | None = None
    tgt_projection: np.ndarray | None = None   # CCA: d_tgt x d_out (identity otherwise)
    src_offset: np.ndarray | None = None       # CCA: the pairs' means, removed before projecting
    tgt_offset: np.ndarray | None = None
    loss: list = field(default_factory=list)   # gd: (step, loss) pairs
    refinement: list = field(default_factory=list)  # self-learning: (round, objective, induced pairs)

    def _prep(self, M, mean):
        M = np.asarray(M, dtype=np.float64)
        if self.normalize:
            M = _unit(M)
        if self.center and mean is not None:
            M = M - mean
            if self.normalize:  # Artetxe et al.: unit length, centre, unit length again
                M = _unit(M)
        return M

    def map_source(self, X):
        X = self._prep(X, self.src_mean)
        if self.src_offset is not None:
            X = X - self.src_offset
        return (X @ self.R).astype(np.float32)

    def map_target(self, Y):
        Y = self._prep(Y, self.tgt_mean)
        if self.tgt_offset is not None:
            Y = Y - self.tgt_offset
        return (Y if self.tgt_projection is None else Y @ self.tgt_projection).astype(np.float32)

    def save(self, path):
        from fastemb.store import save_alignment
        save_alignment(path, self.R, attrs={"method": self.method, "normalize": self.normalize,
                                            "center": self.center},
                       arrays={"src_mean": self.src_mean, "tgt_mean": self.tgt_mean,
                               "tgt_projection": self.tgt_projection, "src_offset": self.src_offset,
                               "tgt_offset": self.tgt_offset,
                               "loss": np.asarray(self.loss, dtype=np.float64).reshape(-1, 2) if self.loss else None,
                               "refinement": np.asarray(self.refinement, dtype=np.float64).reshape(-1, 3)
                               if self.refinement else None})

    @classmethod
    def load(cls, path):
        from fastemb.store import load_alignment
        R, attrs, arrays = load_alignment(path)
        return cls(R=R, method=attrs.get("method", "?"), normalize=bool(attrs.get("normalize", False)),
                   center=bool(attrs.get("center", False)), src_mean=arrays.get("src_mean"),
                   tgt_mean=arrays.get("tgt_mean"), tgt_projection=arrays.get("tgt_projection"),
                   src_offset=arrays.get("src_offset"), tgt_offset=arrays.get("tgt_offset"),
                   loss=[tuple(x) for x in arrays["loss"]] if "loss" in arrays else [],
                   refinement=[tuple(x) for x in arrays["refinement"]] if "refinement" in arrays else [])


def lexicon_matrices(src, tgt, pairs):
    """Rows of the pairs whose words are in both vocabularies: (X, Y, kept pairs)."""
    kept = [(s, t) for s, t in pairs if s in src.index and t in tgt.index]
    if not kept:
        raise FastembError("no lexicon pair has its source word in the source vocabulary and its target "
                           "word in the target vocabulary")
    X = src.vectors[[src.index[s] for s, _ in kept]]
    Y = tgt.vectors[[tgt.index[t] for _, t in kept]]
    return X, Y, kept


def fit(src, tgt, pairs, method="procrustes", *, normalize=False, center=False, lr=None, steps=1000,
        log_every=50, ridge=1e-3, log=None, **vecmap) -> Alignment:
    """Learn the mapping from the training pairs. src/tgt: Embeddings; pairs: [(source, target)].
    vecmap: the multi-step framework of Artetxe et al. 2018 (see `vecmap_transforms` for its options:
    whiten, src_reweight, trg_reweight, src_dewhiten, trg_dewhiten, dim_reduction); it maps both spaces
    and implies normalize and center (unit length, centring, unit length again)."""
    if method not in METHODS:
        raise FastembError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    if vecmap and method != "vecmap":
        raise OptionError(next(iter(vecmap)), f"applies to {param('method')} vecmap (not {method})")
    if method == "vecmap":
        normalize = center = True
    X0, Y0, _ = lexicon_matrices(src, tgt, pairs)
    a = Alignment(R=np.zeros((X0.shape[1], Y0.shape[1])), method=method, normalize=normalize, center=center)
    if center:
        # centring means come from the whole vocabularies, as in Artetxe et al. 2016
        a.src_mean = (_unit(src.vectors.astype(np.float64)) if normalize else src.vectors).mean(0)
        a.tgt_mean = (_unit(tgt.vectors.astype(np.float64)) if normalize else tgt.vectors).mean(0)
    X = a._prep(X0, a.src_mean)
    Y = a._prep(Y0, a.tgt_mean)
    if method == "lstsq":
        a.R = np.linalg.lstsq(X, Y, rcond=None)[0]
    elif method == "procrustes":
        if X.shape[1] != Y.shape[1]:
            raise FastembError(f"procrustes needs equal dimensions (source {X.shape[1]}, target {Y.shape[1]}): "
                               f"use lstsq, gd or cca")
        U, _, Vt = np.linalg.svd(X.T @ Y)
        a.R = U @ Vt
    elif method == "gd":
        a.R, a.loss = _gradient_descent(X, Y, lr, steps, log_every, log)
    elif method == "vecmap":
        a.R, a.tgt_projection = vecmap_transforms(X, Y, **vecmap)
    else:
        a.src_offset, a.tgt_offset = X.mean(0), Y.mean(0)
        a.R, a.tgt_projection = _cca(X - a.src_offset, Y - a.tgt_offset, ridge)
    a.R = a.R.astype(np.float32)
    for name in ("tgt_projection", "src_offset", "tgt_offset", "src_mean", "tgt_mean"):
        if getattr(a, name) is not None:
            setattr(a, name, getattr(a, name).astype(np.float32))
    return a


def _inv_sqrt(M):
    """(MᵀM)^(-1/2) and (MᵀM)^(1/2) from the SVD of M (M's rows: aligned vectors)."""
    _, s, vt = np.linalg.svd(M, full_matrices=False)
    s = np.maximum(s, 1e-8 * max(s.max(), 1e-300))
    return (vt.T / s) @ vt, (vt.T * s) @ vt


def vecmap_transforms(X, Y, *, whiten=True, src_reweight=0.5, trg_reweight=0.5, src_dewhiten="src",
                      trg_dewhiten="trg", dim_reduction=None):
    """Artetxe, Labaka & Agirre (2018), "Generalizing and improving bilingual word embedding mappings with a
    multi-step framework of linear transformations", for aligned rows X (source) and Y (target), already
    normalised. Returns (Wx, Wy): the source maps by X·Wx and the target by Y·Wy into a shared space.
      1. whitening: Wx1 = (XᵀX)^(-1/2), Wy1 = (YᵀY)^(-1/2)
      2. orthogonal mapping: U S Vᵀ = svd((X·Wx1)ᵀ (Y·Wy1)); source ·U, target ·V
      3. re-weighting: the source by S^src_reweight, the target by S^trg_reweight
      4. de-whitening: by Uᵀ·Wx1⁻¹·U ("src") or Vᵀ·Wy1⁻¹·V ("trg"), each side as chosen (None: none)
      5. dimensionality reduction: the first dim_reduction components (None: all)."""
    if X.shape[1] != Y.shape[1] and (src_dewhiten == "trg" or trg_dewhiten == "src"):
        raise OptionError("src_dewhiten", "de-whitening with the other language needs equal dimensions")
    if not whiten and (src_dewhiten or trg_dewhiten):
        raise OptionError("whiten", "must be on for de-whitening")
    dx, dy = X.shape[1], Y.shape[1]
    Wx1, Wx1_inv = _inv_sqrt(X) if whiten else (np.eye(dx), np.eye(dx))
    Wy1, Wy1_inv = _inv_sqrt(Y) if whiten else (np.eye(dy), np.eye(dy))
    U, s, Vt = np.linalg.svd((X @ Wx1).T @ (Y @ Wy1), full_matrices=False)
    V = Vt.T
    Wx, Wy = Wx1 @ U * s ** src_reweight, Wy1 @ V * s ** trg_reweight
    dewhiten = {"src": U.T @ Wx1_inv @ U, "trg": V.T @ Wy1_inv @ V, None: None}
    for name, value in (("src_dewhiten", src_dewhiten), ("trg_dewhiten", trg_dewhiten)):
        if value not in dewhiten:
            raise OptionError(name, f"must be src, trg or None (got {value!r})")
    if src_dewhiten:
        Wx = Wx @ dewhiten[src_dewhiten]
    if trg_dewhiten:
        Wy = Wy @ dewhiten[trg_dewhiten]
    if dim_reduction is not None:
        if not 1 <= dim_reduction <= Wx.shape[1]:
            raise OptionError("dim_reduction", f"must be between 1 and {Wx.shape[1]} (got {dim_reduction})")
        Wx, Wy = Wx[:, :dim_reduction], Wy[:, :dim_reduction]
    return Wx, Wy


def induce_pairs(alignment, src, tgt, *, vocab=20000, csls_k=10, direction="union", batch=2048):
    """A dictionary induced from the mapped spaces: for the `vocab` most frequent words of each side, the
    nearest neighbour under CSLS forward (source -> target), backward, their union (VecMap's default) or
    the mutual pairs (MUSE's refinement). Returns (source ids, target ids, the mean cosine of the forward
    and backward pairs)."""
    if direction not in ("union", "mutual", "forward", "backward"):
        raise OptionError("direction", f"must be union, mutual, forward or backward (got {direction!r})")
    n_src, n_tgt = min(vocab, len(src)), min(vocab, len(tgt))
    S = _unit(alignment.map_source(src.vectors[:n_src]))
    T = _unit(alignment.map_target(tgt.vectors[:n_tgt]))
    r_src = mean_topk_similarity(T, S, csls_k, batch)  # each target's neighbourhood among mapped sources
    r_tgt = mean_topk_similarity(S, T, csls_k, batch)
    fwd = retrieve(S, T, 1, "csls", batch=batch, penalties=(r_tgt, r_src))[:, 0]
    bwd = retrieve(T, S, 1, "csls", batch=batch, penalties=(r_src, r_tgt))[:, 0]
    # the objective: the mean cosine of the pairs each direction induced
    objective = (np.einsum("ij,ij->i", S, T[fwd]).mean() + np.einsum("ij,ij->i", T, S[bwd]).mean()) / 2
    src_ids = np.arange(n_src)
    tgt_ids = np.arange(n_tgt)
    if direction == "forward":
        pairs = (src_ids, fwd)
    elif direction == "backward":
        pairs = (bwd, tgt_ids)
    elif direction == "union":
        pairs = (np.concatenate((src_ids, bwd)), np.concatenate((fwd, tgt_ids)))
    else:
        mutual = bwd[fwd] == src_ids
        pairs = (src_ids[mutual], fwd[mutual])
    return pairs[0], pairs[1], float(objective)


def refine(src, tgt, seed_pairs, rounds=5, method="procrustes", *, vocab=20000, csls_k=10, direction="union",
           normalize=False, center=False, log=None, **fit_options) -> Alignment:
    """Self-learning from a seed lexicon (Artetxe et al. 2017/2018, Conneau et al. 2018): fit on the seed, then
    each round re-induce the dictionary from the mapped spaces (`induce_pairs`) and fit again on it; stops
    early when the induced dictionary no longer changes. The alignment records the rounds' objectives."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise OptionError("refine", f"must be 0 or a positive number of rounds (got {rounds!r})")
    a = fit(src, tgt, seed_pairs, method, normalize=normalize, center=center, **fit_options)
    previous = None
    for r in range(rounds):
        s_ids, t_ids, objective = induce_pairs(a, src, tgt, vocab=vocab, csls_k=csls_k, direction=direction)
        induced = {(int(i), int(j)) for i, j in zip(s_ids, t_ids)}
        a.refinement.append((r + 1, objective, len(induced)))
        if log:
            log(f"align refine: round {r + 1}/{rounds}  objective {objective:.4f}  {len(induced):,} pairs")
        if induced == previous:
            break
        previous = induced
        pairs = [(src.words[i], tgt.words[j]) for i, j in sorted(induced)]
        history = a.refinement
        a = fit(src, tgt, pairs, method, normalize=normalize, center=center, **fit_options)
        a.refinement = history
    return a


def _gradient_descent(X, Y, lr, steps, log_every, log):
    """Minimise L = (1/m)‖XR − Y‖²_F with gradient (2/m)Xᵀ(XR − Y), from R = 0."""
    m = X.shape[0]
    if lr is None:  # the largest stable step is 1/λ_max of the Hessian (2/m)XᵀX
        lr = 0.9 / max(np.linalg.eigvalsh((2.0 / m) * X.T @ X)[-1], 1e-12)
    if lr <= 0 or steps < 1:
        raise OptionError("lr" if lr <= 0 else "steps", f"must be positive (got {lr if lr <= 0 else steps})")
    R = np.zeros((X.shape[1], Y.shape[1]))
    XtX, XtY = X.T @ X, X.T @ Y
    losses = []
    for step in range(steps + 1):
        if step % log_every == 0 or step == steps:
            loss = float(np.sum((X @ R - Y) ** 2) / m)
            if not np.isfinite(loss):
                raise FastembError(f"gradient descent diverged at step {step}: lower {param('lr')}")
            losses.append((step, loss))
            if log:
                log(f"align gd: step {step}/{steps}  loss {loss:.6f}")
        if step < steps:
            R -= lr * (2.0 / m) * (XtX @ R - XtY)
    return R, losses


def _cca(Xc, Yc, ridge):
    """Canonical correlation projections of centred pairs: source X·A, target Y·B, correlations in
    decreasing order; a small ridge keeps the covariances invertible when pairs are few."""
    m = Xc.shape[0]

    def inv_sqrt(C):
        w, V = np.linalg.eigh(C + ridge * np.trace(C) / C.shape[0] * np.eye(C.shape[0]))
        return (V / np.sqrt(np.maximum(w, 1e-12))) @ V.T
    Wx, Wy = inv_sqrt(Xc.T @ Xc / m), inv_sqrt(Yc.T @ Yc / m)
    U, s, Vt = np.linalg.svd(Wx @ (Xc.T @ Yc / m) @ Wy)
    k = min(Xc.shape[1], Yc.shape[1])
    return Wx @ U[:, :k], Wy @ Vt.T[:, :k]


# ----------------------------------------------------------------------------------------- retrieval
def _topk(S, k):
    """(indices, values) of the k largest entries of each row of S."""
    return top_k_rows(S, k)


def mean_topk_similarity(A, B, k, batch=2048):
    """For each row of A: the mean cosine of its k nearest rows of B (A, B unit-normalised)."""
    out = np.empty(A.shape[0], np.float32)
    for b0 in range(0, A.shape[0], batch):
        out[b0:b0 + batch] = _topk(A[b0:b0 + batch] @ B.T, k)[1].mean(1)
    return out


def retrieve(queries, targets, k=10, method="nn", csls_k=10, mapped_sources=None, batch=2048, penalties=None):
    """Top-k target rows for each query row (all unit-normalised): nearest neighbour by cosine, or CSLS
    2cos(x, y) − r_T(x) − r_S(y) where r_T(x) is the mean similarity of x to its csls_k nearest targets
    and r_S(y) that of y to its csls_k nearest mapped sources (all of `mapped_sources`). `penalties`:
    (r_T of the queries, r_S of the targets) when the caller has them already."""
    if method not in ("nn", "csls"):
        raise FastembError(f"unknown retrieval {method!r} (nn or csls)")
    if method == "csls":
        if penalties is not None:
            r_tgt, r_src = penalties
        else:
            sources = queries if mapped_sources is None else mapped_sources
            r_src = mean_topk_similarity(targets, sources, csls_k, batch)
            r_tgt = mean_topk_similarity(queries, targets, csls_k, batch)
    out = np.empty((queries.shape[0], min(k, targets.shape[0])), np.int64)
    for b0 in range(0, queries.shape[0], batch):
        S = queries[b0:b0 + batch] @ targets.T
        if method == "csls":
            S = 2 * S - r_tgt[b0:b0 + batch, None] - r_src[None, :]
        out[b0:b0 + batch] = _topk(S, k)[0]
    return out


def evaluate(alignment, src, tgt, test_pairs, ks=(1, 5, 10), csls_k=10, restrict_vocab=None):
    """P@k for NN and CSLS retrieval. A query counts as correct when any of its gold translations is in
    the top k (the standard for lexicons with several translations per word)."""
    gold = {}
    for s, t in test_pairs:
        if s in src.index and t in tgt.index:
            gold.setdefault(s, set()).add(tgt.index[t])
    if not gold:
        raise FastembError("no test pair has both words in the vocabularies")
    queries = list(gold)
    n_tgt = len(tgt) if restrict_vocab is None else min(restrict_vocab, len(tgt))
    T = _unit(alignment.map_target(tgt.vectors[:n_tgt]))
    Q = _unit(alignment.map_source(src.vectors[[src.index[s] for s in queries]]))
    n_src = len(src) if restrict_vocab is None else min(restrict_vocab, len(src))
    S_all = _unit(alignment.map_source(src.vectors[:n_src]))
    out = {"test_words": len(queries)}
    for method in ("nn", "csls"):
        top = retrieve(Q, T, max(ks), method, csls_k, mapped_sources=S_all)
        for k in ks:
            hits = [bool(gold[s] & set(top[i, :k].tolist())) for i, s in enumerate(queries)]
            out[f"{method}_p@{k}"] = float(np.mean(hits))
    return out


def split_lexicon(pairs, test_fraction=0.2, seed=1):
    """Split by source word, so no test word was seen in training."""
    if not 0 < test_fraction < 1:
        raise OptionError("test_fraction", f"must be between 0 and 1 (got {test_fraction})")
    sources = sorted({s for s, _ in pairs})
    rng = generator(seed)
    rng.shuffle(sources)
    n_test = max(1, int(round(test_fraction * len(sources))))
    test = set(sources[:n_test])
    return [p for p in pairs if p[0] not in test], [p for p in pairs if p[0] in test]


def translate(alignment, src, tgt, word, k=10, method="csls", csls_k=10, restrict_vocab=None):
    """The k best translations of `word` with the score they were ranked by (CSLS, or the cosine for nn)."""
    n_tgt = len(tgt) if restrict_vocab is None else min(restrict_vocab, len(tgt))
    n_src = len(src) if restrict_vocab is None else min(restrict_vocab, len(src))
    T = _unit(alignment.map_target(tgt.vectors[:n_tgt]))
    q = _unit(alignment.map_source(src.vectors[[src.get_index(word)]]))
    scores = (q @ T.T)[0]
    if method == "csls":
        S_all = _unit(alignment.map_source(src.vectors[:n_src]))
        r_src = mean_topk_similarity(T, S_all, csls_k)
        r_tgt = mean_topk_similarity(q, T, csls_k)
        scores = 2 * scores - r_tgt[0] - r_src
    elif method != "nn":
        raise OptionError("retrieval", f"must be nn or csls (got {method!r})")
    top = top_k(scores, k)
    return [(tgt.words[i], float(scores[i])) for i in top]
