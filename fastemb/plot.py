"""2-D maps of embeddings (PCA, exact t-SNE) and loss curves, drawn with matplotlib (optional extra)."""
from __future__ import annotations

import numpy as np

from . import _tsne_kernels as K
from .errors import FastembError, param

TSNE_MAX_POINTS = 5000


def pca_2d(X):
    X = np.asarray(X, np.float64)
    Xc = X - X.mean(0)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    return Xc @ Vt[:2].T


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
    P = K.conditional_p(D, perplexity, 1e-5, 200)
    P = (P + P.T) / (2.0 * n)
    P = np.maximum(P, 1e-12)
    Y = pca_2d(X)
    Y = Y / (np.std(Y[:, 0]) or 1.0) * 1e-4
    Y += np.random.default_rng(seed).standard_normal(Y.shape) * 1e-6
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


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FastembError("plotting needs matplotlib: pip install 'fastemb[plot]'") from None
    return plt


def draw_map(points, labels, path, title=""):
    from .store import atomic_output
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 12))
    ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6)
    for (x, y), label in zip(points, labels):
        ax.annotate(label, (x, y), fontsize=7, alpha=0.85, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def draw_loss(loss, path, title="gradient descent: (1/m)‖XR − Y‖²"):
    from .store import atomic_output
    plt = _pyplot()
    steps, values = zip(*loss)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, values, marker=".")
    ax.set(xlabel="step", ylabel="loss", title=title, yscale="log")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
