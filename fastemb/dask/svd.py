"""PPMI-SVD on a Dask cluster: PPMI per row block with the whole matrix's column statistics (ppmi.ppmi_rows) and
a blockwise randomized SVD (Halko et al.: the local solver's range finder and Gaussian start, every product
computed per block in a task, QR by TSQR); the matrix is never densified. Signs as the local solver's
(ppmi.fix_signs)."""
from __future__ import annotations

import numpy as np

from fastemb.dask.cluster import client_of, release, require, shared, tree_reduce, worker_addresses, worker_threads
from fastemb.errors import FastembError, param
from fastemb.progress import log


def _as_blocks(client, X, block_rows=None):
    """Futures of CSR row blocks: X is a list of futures or matrices (row blocks in order), or one matrix
    (cut into blocks of about equal nonzeros, one or two per worker)."""
    import scipy.sparse as sp
    from distributed import Future
    if isinstance(X, (list, tuple)):
        return [b if isinstance(b, Future) else shared(client, sp.csr_matrix(b)) for b in X]
    X = sp.csr_matrix(X)
    n = X.shape[0]
    if block_rows is None:
        k = max(1, min(n, 2 * len(worker_addresses(client))))
        cum = X.indptr[1:].astype(np.float64) + np.arange(1, n + 1)
        cuts = np.searchsorted(cum, cum[-1] * np.arange(1, k) / k) + 1
        bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, n), [n])))
    else:
        bounds = np.unique(np.concatenate((np.arange(0, n, int(block_rows)), [n])))
    return [shared(client, X[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


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
    """ppmi.ppmi_rows on one row block with the whole matrix's column statistics."""
    from fastemb.models.ppmi import ppmi_rows
    return ppmi_rows(b, col_smooth, log_total, shift)


def _nnz(b):
    return int(b.nnz)


def ppmi_blocks(X, client, *, cds=0.75, shift=1.0, block_rows=None):
    """PPMI of a row-sharded co-occurrence matrix (ppmi.ppmi_matrix per block, column sums gathered):
    futures of float32 CSR row blocks."""
    require()
    from fastemb.models.ppmi import smoothed_columns
    if shift <= 0:
        raise FastembError(f"{param('shift')} must be positive (got {shift})")
    blocks = _as_blocks(client, X, block_rows)
    col_sum = tree_reduce(client, [client.submit(_col_sums, b) for b in blocks], _add).result()
    col_smooth, log_total = smoothed_columns(col_sum, cds)
    cs = shared(client, col_smooth)
    return [client.submit(_ppmi_block, b, cs, log_total, shift) for b in blocks]


def _transpose(b):
    return b.T.tocsr()


def _matmat(b, B):
    """b @ B with the local kernel (float32), on the worker's threads."""
    import scipy.sparse as sp
    from fastemb.models.ppmi import matmat
    return matmat(sp.csr_matrix(b, dtype=np.float32), B, worker_threads())


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
    return tree_reduce(client, [client.submit(_matmat, t, q) for t, q in zip(Mt, Q)], _add).result().astype(np.float32)


def _times(q, u):
    return q.astype(np.float64) @ u


def randomized_svd_blocks(blocks, k, client, *, n_iter=4, oversample=10, seed=1):
    """ppmi.randomized_svd on a matrix given as row blocks (futures or matrices, in row order): the same
    range finder with power iterations (same Gaussian start for the same seed), every product computed per
    block in a task, QR by TSQR. Returns (U, s, vt) like the local solver, up to rounding."""
    require()
    from fastemb.models.ppmi import gaussian_start, small_svd
    blocks = _as_blocks(client, blocks)
    shapes = client.gather([client.submit(_shape, b) for b in blocks])
    n_rows, n_cols = sum(s[0] for s in shapes), shapes[0][1]
    keep = [i for i, s in enumerate(shapes) if s[0] > 0]
    blocks = [blocks[i] for i in keep]
    Mt = [client.submit(_transpose, b) for b in blocks]
    width = min(k + oversample, min(n_rows, n_cols))
    gf = shared(client, gaussian_start(n_cols, width, seed))
    Q = _tsqr(client, [client.submit(_matmat, b, gf) for b in blocks])
    for it in range(n_iter):
        Z = np.linalg.qr(_sum_products(client, Mt, Q))[0]
        zf = shared(client, Z)
        Q = _tsqr(client, [client.submit(_matmat, b, zf) for b in blocks])
        log.info(f"svd: power iteration {it + 1}/{n_iter}")
    Bt = _sum_products(client, Mt, Q)
    u_b, s, vt = small_svd(Bt)
    uf = shared(client, u_b[:, :k])
    U = np.vstack(client.gather([client.submit(_times, q, uf) for q in Q]))
    return U.astype(np.float32), s[:k].astype(np.float32), vt[:k].astype(np.float32)


def ppmi_svd(X, client=None, *, dim=100, cds=0.75, shift=1.0, seed=1, n_iter=4, oversample=10, block_rows=None):
    """PPMI-SVD on the cluster: X is a co-occurrence matrix (scipy sparse, cut into row blocks) or its row
    blocks (futures from cooccurrence_blocks, or matrices). Returns (U, s, vt) with the sign convention of
    ppmi.truncated_svd (the largest-magnitude entry of each left vector positive): singular values match
    truncated_svd(ppmi_matrix(X), dim, "randomized", seed) to rounding; ppmi.weighted_vectors makes vectors."""
    require()
    from fastemb.models.ppmi import check_ppmi, check_rank, fix_signs
    client, owned = client_of(client)
    try:
        M = ppmi_blocks(X, client, cds=cds, shift=shift, block_rows=block_rows)
        nnz = sum(client.gather([client.submit(_nnz, b) for b in M]))
        check_ppmi(nnz)
        shapes = client.gather([client.submit(_shape, b) for b in M])
        check_rank(dim, min(sum(s[0] for s in shapes), shapes[0][1]))
        log.info(f"ppmi: {nnz:,} positive entries in {len(M)} row blocks")
        U, s, vt = randomized_svd_blocks(M, dim, client, n_iter=n_iter, oversample=oversample, seed=seed)
        U, vt = fix_signs(U, vt)
        return U, s, vt
    finally:
        if owned:
            release(client)
