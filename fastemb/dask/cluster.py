"""The Dask cluster: connecting (an address, local:N, or a Client), checking its workers, shared objects as
recomputable task results, ordered tree reductions and progress over futures. dask and distributed are
imported inside the functions: without them every entry point fails with one line."""
from __future__ import annotations

import os
import re

from fastemb.errors import FastembError, param
from fastemb.progress import Progress, log

DASK_MISSING = "distributed counting needs dask: pip install 'fastemb[dask]'"
TREE_FANIN = 8


def require():
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
    distributed = require()
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
        announce(client)
        return client, True
    try:
        client = distributed.Client(a, timeout="30s")
    except (OSError, ValueError, TypeError) as e:
        raise FastembError(f"cannot connect to the Dask scheduler at {a}: {e}") from None
    announce(client)
    return client, True


def identity(x):
    return x


def shared(client, obj):
    """obj on the cluster as the result of a task (not scattered data): a worker that dies holding it is
    survived, since Dask recomputes a task's result from the graph but cannot recompute scattered data
    (its dependents would be cancelled for "lost dependencies")."""
    return client.submit(identity, obj, pure=False)


def announce(client):
    link = getattr(client, "dashboard_link", None)
    if link:
        log.info(f"dask: dashboard at {link}")


def client_of(client):
    """(client, owned) from a Client or an address."""
    if client is None:
        distributed = require()
        try:
            return distributed.get_client(), False
        except ValueError:
            raise FastembError(f"distributed counting needs a Dask client or address ({param('dask')})") from None
    return connect(client)


def worker_version():
    from fastemb import __version__
    return __version__


def worker_addresses(client) -> list:
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


def check_workers(client):
    """Fail with one line when the cluster has no worker or its workers cannot import fastemb."""
    try:
        client.wait_for_workers(1, timeout=60)
    except Exception:
        raise FastembError("the Dask cluster has no workers (none joined within 60s)") from None
    try:
        versions = client.run(worker_version)
    except Exception as e:
        raise FastembError(f"the Dask workers cannot run fastemb ({type(e).__name__}: {e}): install fastemb "
                           f"where the workers run") from None
    from fastemb import __version__
    other = sorted({v for v in versions.values() if v != __version__})
    if other:
        log.warning(f"warning: Dask workers run fastemb {', '.join(other)}, this process {__version__}")
    announce(client)
    return len(versions)


def worker_threads() -> int:
    """The threads this task may use: the worker's own thread count (1 outside a worker)."""
    try:
        from distributed import get_worker
        n = int(get_worker().state.nthreads)
    except Exception:
        n = 1
    from fastemb.parallel import max_threads
    return max(1, min(n, max_threads()))


def tree_reduce(client, futures, fn, fanin=TREE_FANIN):
    """Reduce futures with fn(*group) in a tree, keeping their order (fn is associative, not commutative)."""
    while len(futures) > 1:
        futures = [client.submit(fn, *futures[i:i + fanin]) if len(futures[i:i + fanin]) > 1 else futures[i]
                   for i in range(0, len(futures), fanin)]
    return futures[0]


def track(futures, label, tokens, unit_label="shards"):
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
