"""2-D maps of embeddings (PCA, exact t-SNE) and loss curves, drawn with matplotlib (optional extra)."""
from __future__ import annotations

import numpy as np

from fastemb.kernels import tsne as K
from fastemb.errors import FastembError, param
from fastemb.seeding import generator

TSNE_MAX_POINTS = 5000
MAX_MAP_WORDS = 5000    # labels on one map (PCA too): more are unreadable, and placing them is O(n²)
ADJUST_MAX_LABELS = 1000  # labels moved apart by adjustText (its passes are O(n²) in Python); more are drawn as placed


def pca_2d(X, return_variance=False):
    """The first two principal components; with return_variance also the share of variance each explains."""
    X = np.asarray(X, np.float64)
    Xc = X - X.mean(0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    pts = Xc @ Vt[:2].T
    if return_variance:
        var = s ** 2
        return pts, (var[:2] / max(var.sum(), 1e-300)).tolist()
    return pts


def tsne_2d(X, perplexity=30.0, iterations=1000, seed=1, learning_rate=None, exaggeration=12.0):
    """Exact t-SNE with the optimiser of van der Maaten's reference implementation: early exaggeration
    for 250 iterations, momentum 0.5 then 0.8, per-parameter gains; PCA initialisation scaled small."""
    X = np.asarray(X, np.float64)
    n = X.shape[0]
    if n > TSNE_MAX_POINTS:
        raise FastembError(f"exact t-SNE is O(n²): at most {TSNE_MAX_POINTS} words (got {n}); use {param('method')} pca")
    if n < 4:
        raise FastembError("t-SNE needs at least 4 words")
    perplexity = min(perplexity, (n - 1) / 3.0)
    sq = (X * X).sum(1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0)
    D /= D.max() if D.max() > 0 else 1.0
    P = np.zeros((n, n))
    from fastemb.loop import call_ranges, units_per_call
    from fastemb.parallel import max_threads
    for r0, r1 in call_ranges(n, units_per_call(2 * n * 200, max_threads())):  # work-sized calls (loop.py)
        K.conditional_p_rows(D, perplexity, 1e-5, 200, r0, r1, P)
    P = (P + P.T) / (2.0 * n)
    P = np.maximum(P, 1e-12)
    Y = pca_2d(X)
    Y = Y / (np.std(Y[:, 0]) or 1.0) * 1e-4
    Y += generator(seed).standard_normal(Y.shape) * 1e-6
    lr = learning_rate or max(n / exaggeration / 4.0, 50.0)
    velocity = np.zeros_like(Y)
    gains = np.ones_like(Y)
    grad = np.zeros_like(Y)
    kl = np.nan
    for it in range(iterations):
        early = it < 250
        kl = K.kl_gradient(P * exaggeration if early else P, Y, grad)
        momentum = 0.5 if early else 0.8
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(min=0.01)
        velocity = momentum * velocity - lr * gains * grad
        Y = Y + velocity
        Y -= Y.mean(0)
    return Y, float(kl)


def pyplot():
    """matplotlib.pyplot on the Agg backend, or the one-line error when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FastembError("plotting needs matplotlib: pip install 'fastemb[plot]'") from None
    return plt


def default_words(words, top, skip=0):
    """The `top` most frequent words after `skip`, leaving out tokens without a letter or digit (punctuation)."""
    chosen = [w for w in words[skip:] if any(c.isalnum() for c in w)]
    return chosen[:top]


def word_map(emb, words, path, *, method="tsne", perplexity=30.0, iterations=1000, seed=1, title=None) -> dict:
    """A labelled 2-D map of `words` (PCA with the variance each axis explains, or exact t-SNE) as a PNG."""
    if len(words) < 3:
        raise FastembError("fewer than 3 words to plot")
    if len(words) > MAX_MAP_WORDS:
        raise FastembError(f"a map of {len(words):,} words: at most {MAX_MAP_WORDS:,} labels fit on one (lower "
                           f"{param('top')} or list fewer {param('words_file')})")
    X = emb.get_normed_vectors()[[emb.get_index(w) for w in words]]
    name = title or "embeddings"
    if method == "pca":
        pts, var = pca_2d(X, return_variance=True)
        draw_map(pts, words, path, title=f"{name}: PCA of {len(words)} words ({100 * sum(var):.1f}% of the "
                                         f"variance shown)",
                 xlabel=f"PC1 ({100 * var[0]:.1f}% of variance)", ylabel=f"PC2 ({100 * var[1]:.1f}% of variance)")
        return {"explained_variance": var}
    if method != "tsne":
        raise FastembError(f"unknown map method {method!r} (pca or tsne)")
    pts, kl = tsne_2d(X, perplexity=perplexity, iterations=iterations, seed=seed)
    draw_map(pts, words, path, title=f"{name}: t-SNE of {len(words)} words (perplexity {perplexity:g}, "
                                     f"KL {kl:.2f})", xlabel="t-SNE 1", ylabel="t-SNE 2")
    return {"kl_divergence": kl}


def draw_map(points, labels, path, title="", xlabel="", ylabel=""):
    """Points with labels moved apart (adjustText, when installed) so that none overlaps another."""
    from fastemb.store import atomic_output
    plt = pyplot()
    n = len(labels)
    size = min(22.0, max(8.0, 0.55 * np.sqrt(n) + 4))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.scatter(points[:, 0], points[:, 1], s=8, color="#4477aa", alpha=0.7)
    fontsize = 9 if n <= 150 else 7
    texts = [ax.text(x, y, label, fontsize=fontsize) for (x, y), label in zip(points, labels)]
    try:
        from adjustText import adjust_text
        if n <= ADJUST_MAX_LABELS:
            adjust_text(texts, ax=ax, expand=(1.05, 1.2), arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5))
    except ImportError:
        from fastemb.progress import log
        log.warning("warning: labels may overlap: pip install adjustText (or 'fastemb[plot]') to move them apart")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def draw_loss(loss, path, title="gradient descent: (1/m)‖XR − Y‖²"):
    from fastemb.store import atomic_output
    plt = pyplot()
    steps, values = zip(*loss)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, values, marker=".")
    ax.set(xlabel="gradient step", ylabel="loss (log scale)", title=title, yscale="log")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
