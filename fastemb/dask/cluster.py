"""The Dask cluster: connecting (an address, local:N, or a Client), checking its workers, shared objects as
recomputable task results, ordered tree reductions and progress over futures. dask and distributed are
imported inside the functions: without them every entry point fails with one line."""
from __future__ import annotations

import contextlib
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
        check_local_workers(n, address)
        client = _local_cluster(distributed, n)
        announce(client)
        return client, True
    try:
        import dask
        client = distributed.Client(a, timeout=dask.config.get("distributed.comm.timeouts.connect", "30s"))
    except (OSError, ValueError, TypeError) as e:
        raise FastembError(f"cannot connect to the Dask scheduler at {a}: {e}") from None
    announce(client)
    return client, True


CLUSTER_TIMEOUT_S = 60   # every connection and every reply of the cluster: a peer that never answers fails


def _cluster_name(address) -> str:
    if isinstance(address, str):
        return address.strip()
    return str(getattr(getattr(address, "scheduler", None), "address", None) or "(the client given)")


def _cause(e) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}" + (f": {text[:200]}" if text else "")


@contextlib.contextmanager
def cluster_guard(address, timeout_s=CLUSTER_TIMEOUT_S):
    """Run distributed work so that a cluster failure is one line: a timeout on every connection and reply
    (dask's comm timeouts), dask's own log lines about the failure silenced while it is turned into one
    FastembError naming the cluster and the cause (a dead scheduler, a peer that never answers, a garbled
    reply). fastemb's own errors and interruptions pass through unchanged."""
    import logging
    try:
        import dask
    except ImportError:
        raise FastembError(DASK_MISSING) from None
    quiet = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in quiet]
    name = _cluster_name(address)
    with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout_s}s",
                          "distributed.comm.timeouts.tcp": f"{timeout_s}s"}):
        try:
            for lg in quiet:
                lg.setLevel(logging.CRITICAL)
            yield
        except (FastembError, MemoryError):
            raise
        except Exception as e:
            raise FastembError(f"the Dask cluster {name} failed: {_cause(e)}") from None
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)


WORKER_BYTES = 200 << 20   # what one local worker process takes at least (interpreter, dask, numpy, numba)


def max_local_workers() -> int:
    """The most worker processes `local:N` starts: 8 per core."""
    return 8 * (os.cpu_count() or 1)


def check_local_workers(n, address):
    """local:N is bounded by the cores and by the memory N worker processes need, checked before any starts."""
    from fastemb.files import available_memory
    from fastemb.progress import human
    most = max_local_workers()
    if n > most:
        raise FastembError(f"{param('dask')} {address}: at most {most} local worker processes on this machine "
                           f"({os.cpu_count() or 1} cores; each runs one thread)")
    have = available_memory()
    if have is not None and n * WORKER_BYTES > have:
        raise FastembError(f"{param('dask')} {address}: {n} worker processes need about {human(n * WORKER_BYTES)}B "
                           f"but only {human(have)}B of memory is available: start fewer")


def _local_cluster(distributed, n):
    """A LocalCluster of n one-thread worker processes whose scratch space (dask-scratch-space/) lies in a
    fastemb work directory: removed when the client is collected or the process exits, and by `fastemb
    clean` when the run died; nothing is left in the current or the temporary directory."""
    import shutil
    import weakref
    from fastemb.files import work_dir
    import dask
    scratch = work_dir(kind="dask")
    try:
        with dask.config.set({"temporary-directory": scratch}):  # the scheduler's and nannies' scratch too
            client = distributed.Client(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                        local_directory=scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    weakref.finalize(client, shutil.rmtree, scratch, True)
    return client


def _silence_logging():
    """Run on each worker of a LocalCluster about to be closed (see release)."""
    import logging
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def release(client):
    """Close a client this run opened (connect's owned). When it started a LocalCluster, that cluster's worker
    processes are silenced first: a worker whose heartbeat races the scheduler's shutdown logs a traceback
    to the terminal after a run that succeeded (seen in CI). The workers of a cluster given by address are
    not touched: the client only disconnects from them."""
    if getattr(client, "cluster", None) is not None:
        with contextlib.suppress(Exception):
            client.run(_silence_logging)
    client.close()


def identity(x):
    return x


def shared(client, obj):
    """obj on the cluster as the result of a task (not scattered data): a worker that dies holding it is
    survived, since Dask recomputes a task's result from the graph but cannot recompute scattered data
    (its dependents would be cancelled for "lost dependencies")."""
    return client.submit(identity, obj, pure=False)


_ANNOUNCED_LINKS: set = set()


def announce(client):
    """The dashboard's address, once per cluster and process."""
    link = getattr(client, "dashboard_link", None)
    if link and link not in _ANNOUNCED_LINKS:
        _ANNOUNCED_LINKS.add(link)
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
