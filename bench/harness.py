"""Runs benchmark cases one after the other, each in its own process, timed from outside (wall, peak RSS
via wait4), evaluates every output with fastemb's evaluator and writes JSON, a markdown table and plots."""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_SETS = {"ws353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
PEERS = ("gensim", "word2vec.c", "fasttext")


# ------------------------------------------------------------------------------------------ environment
def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def availability(tool):
    """(available, reason or version)."""
    if tool == "fastemb":
        return (shutil.which("fastemb") is not None, _version("fastemb") or "fastemb command not found")
    if tool == "gensim":
        try:
            import gensim  # noqa: F401
            return True, gensim.__version__
        except Exception as e:  # noqa: BLE001 - any import failure means: skip with the reason
            return False, f"gensim cannot be imported ({type(e).__name__}: {e}); pip install gensim"
    if tool == "word2vec.c":
        if shutil.which("word2vec"):
            return True, f"PyPI word2vec {_version('word2vec')}"
        return False, "the word2vec binary is not on PATH; pip install word2vec"
    if tool == "fasttext":
        try:
            import fasttext  # noqa: F401
            return True, f"fasttext {_version('fasttext') or _version('fasttext-numpy2')}"
        except Exception as e:  # noqa: BLE001
            return False, f"fasttext cannot be imported ({type(e).__name__}: {e}); pip install fasttext-numpy2"
    if tool == "numpy-ppmi":
        return True, "numpy/scipy baseline in bench/runners.py"
    if tool == "glove":
        from .runners import glove_c_dir
        if glove_c_dir():
            return True, f"Stanford GloVe C built in {glove_c_dir()}"
        return False, ("Stanford GloVe C is not on the package registries: build https://github.com/stanfordnlp/GloVe "
                       "(make) and set FASTEMB_GLOVE_C to its build/ directory")
    return False, f"unknown tool {tool}"


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    versions = {k: _version(k) for k in ("fastemb", "numba", "numpy", "scipy", "gensim", "word2vec",
                                         "fasttext", "fasttext-numpy2")}
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


# ------------------------------------------------------------------------------------------ running
def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _hwm_mb(pid):
    """Peak resident set (VmHWM) of one process, in MB; it starts afresh at exec, unlike ru_maxrss
    which Linux carries over from the parent that forked the process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class _PeakWatcher(threading.Thread):
    """Polls VmHWM of a process and its descendants; `peak` is the largest one seen."""

    def __init__(self, pid, interval=0.02):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.done = pid, interval, 0.0, False

    def run(self):
        while not self.done:
            stack = [self.pid]
            while stack:
                p = stack.pop()
                self.peak = max(self.peak, _hwm_mb(p))
                stack.extend(_children(p))
            time.sleep(self.interval)


def run_process(argv, env=None, stdin_source=None):
    """(wall seconds, peak RSS MB, returncode, stdout, stderr). The peak RSS is the largest VmHWM of the
    process or any of its descendants, polled every 20 ms while it runs."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})},
                                stdin=subprocess.PIPE if stdin_source else subprocess.DEVNULL)
        watcher = _PeakWatcher(proc.pid)
        watcher.start()
        if stdin_source:
            try:
                for chunk in stdin_source:
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass
            proc.stdin.close()
        # wait without reaping, so the last VmHWM of the process can still be read
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        peak = max(watcher.peak, _hwm_mb(proc.pid))
        watcher.done = True
        proc.wait()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return wall, peak, proc.returncode, out.read().decode(), err.read().decode()


def _children_cpu():
    """CPU seconds (user + system) of the child processes waited for so far, and of their descendants."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_case(case, work):
    """Run one case; returns its record (timings, RSS, the tool's own report, quality)."""
    ok, info = availability(case["tool"])
    record = {**case, "available": ok}
    if not ok:
        record["skipped"] = info
        return record
    out_dir = tempfile.mkdtemp(prefix="case-", dir=work)
    argv = [sys.executable, "-m", "bench.runners", json.dumps({**case, "out_dir": out_dir})]
    result = None
    if case["tool"] == "fastemb" and case["task"] in ("sgns", "cbow"):  # the command itself is the process timed
        from bench.runners import fastemb_result, fastemb_w2v_command
        argv, result = fastemb_w2v_command({**case, "out_dir": out_dir}), fastemb_result
    before = _children_cpu()
    wall, rss, rc, stdout, stderr = run_process(argv, env={"PYTHONPATH": ROOT})
    record.update(wall=wall, rss_mb=rss, returncode=rc, cpu=round(_children_cpu() - before, 3))
    if rc != 0:
        record["error"] = (stderr.strip().splitlines() or ["exit code %d" % rc])[-1]
        return record
    report = json.loads(stdout.strip().splitlines()[-1])
    if result is not None:
        report = result(report)
    record.update({k: v for k, v in report.items() if k != "vectors"})
    if report.get("vectors"):
        record["quality"] = evaluate(report["vectors"])
    shutil.rmtree(out_dir, ignore_errors=True)
    return record


def evaluate(path):
    from fastemb.embeddings import Embeddings
    from fastemb.eval import analogy, dataset, similarity
    from fastemb.formats import read_vectors
    if path.endswith(".h5"):
        emb = Embeddings.load(path)
    else:
        words, vectors = read_vectors(path)
        emb = Embeddings(words, vectors)
    q = {}
    for name, fname in EVAL_SETS.items():
        r = similarity(emb, dataset(fname.split(".")[0]))
        q[name] = round(r["spearman"], 4)
        q[name + "_coverage"] = round(r["coverage"], 3)
    a = analogy(emb, dataset("questions-words"), methods=("3cosadd",))
    q["analogy"] = round(a["3cosadd"], 4)
    q["analogy_coverage"] = round(a["coverage"], 3)
    return q


# ------------------------------------------------------------------------------------------ summaries
def case_key(r):
    return (r["tool"], r.get("mode", ""), r["task"], r.get("threads", 1), os.path.basename(r["corpus"]),
            r.get("epochs", 5), json.dumps(r.get("extra_args", [])), bool(r.get("hs")))


def summarise(records, corpus_tokens):
    """Median and spread over repeats; words/s; ratios peer/fastemb (> 1: fastemb is faster)."""
    groups = {}
    for r in records:
        groups.setdefault(case_key(r), []).append(r)
    rows = []
    for rs in groups.values():
        first = rs[0]
        row = {k: first[k] for k in ("tool", "task", "corpus") if k in first}
        row.update(mode=first.get("mode", ""), threads=first.get("threads", 1), epochs=first.get("epochs", 5),
                   extra_args=first.get("extra_args", []), repeats=len(rs), hs=bool(first.get("hs")))
        if not first.get("available", True) or any("error" in r for r in rs):
            row["skipped"] = first.get("skipped") or next(r["error"] for r in rs if "error" in r)
            rows.append(row)
            continue
        for field in ("wall", "rss_mb", "train_seconds", "cpu"):
            vals = [r[field] for r in rs if r.get(field) is not None]
            if vals:
                row[field] = statistics.median(vals)
                row[field + "_spread"] = [min(vals), max(vals)]
        if "quality" in first:
            row["quality"] = {k: statistics.median([r["quality"][k] for r in rs]) for k in first["quality"]}
            if len(rs) > 1:  # over seeds (--seeds): the spread that says whether a difference is noise
                row["quality_sd"] = {k: statistics.stdev([r["quality"][k] for r in rs]) for k in first["quality"]}
        if all("passes" in r for r in rs):
            row["passes"] = {k: statistics.median([r["passes"][k] for r in rs]) for k in first["passes"]}
        if all("vocab_seconds" in r for r in rs):
            row["vocab_seconds"] = statistics.median([r["vocab_seconds"] for r in rs])
        rows.append(row)
    # word2vec.c reports no training time: its whole run minus its own vocabulary pass in this run
    vocab_wall = {r["corpus"]: r["wall"] for r in rows if r["tool"] == "word2vec.c" and r["task"] == "vocab"
                  and "wall" in r}
    for row in rows:
        if row["tool"] == "word2vec.c" and row["task"] in ("sgns", "cbow") and "wall" in row:
            row["train_seconds"] = row["wall"] - vocab_wall.get(row["corpus"], 0.0)
        if row.get("train_seconds") and row["task"] in ("sgns", "cbow") and row["tool"] != "numpy-ppmi":
            row["words_per_second"] = corpus_tokens.get(row["corpus"], 0) * row["epochs"] / row["train_seconds"]
    for row in rows:
        if row["tool"] == "fastemb" or "wall" not in row:
            continue
        mine = [f for f in rows if f["tool"] == "fastemb" and f["task"] == row["task"] and f["corpus"] == row["corpus"]
                and f["threads"] == row["threads"] and f["epochs"] == row["epochs"] and not f["extra_args"]
                and f.get("hs") == row.get("hs") and "wall" in f]
        if mine:
            f = mine[0]
            row["speedup_wall"] = row["wall"] / f["wall"]
            if row.get("cpu") and f.get("cpu"):
                row["speedup_cpu"] = row["cpu"] / f["cpu"]
            if row.get("train_seconds") and f.get("train_seconds"):
                row["speedup_train"] = row["train_seconds"] / f["train_seconds"]
            if "quality" in row and "quality" in f:
                row["quality_delta"] = {k: round(f["quality"][k] - row["quality"][k], 4)
                                        for k in ("ws353", "analogy")}
    return rows


def qual(row, key):
    """A quality figure of a summary row: the median, ± the standard deviation over seeds when there are several."""
    q = row.get("quality", {})
    if q.get(key) is None:
        return ""
    sd = row.get("quality_sd", {}).get(key)
    return f"{q[key]:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def markdown(rows, meta):
    lines = [f"Benchmark {meta['date']} on {meta['cpu']} ({meta['cores']} cores, {meta['memory_mb']} MB), "
             f"profile {meta['profile']}, corpus tokens: " +
             ", ".join(f"{os.path.basename(k)} {v:,}" for k, v in meta["corpus_tokens"].items()), "",
             "| tool | mode | task | threads | epochs | corpus | wall s | train s | words/s | RSS MB | WS353 | SimLex | "
             "analogy | peer time / fastemb time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["tool"] + (" " + " ".join(r["extra_args"]) if r.get("extra_args") else "")
        if "skipped" in r:
            lines.append(f"| {name} | {r.get('mode', '')} | {r['task']} | {r['threads']} | {r['epochs']} | "
                         f"{os.path.basename(r['corpus'])} | skipped: {r['skipped']} |||||||| ")
            continue
        fmt = (lambda v, p=2: "" if v is None else f"{v:.{p}f}")
        spread = r.get("wall_spread")
        wall = fmt(r.get("wall")) + (f" ({spread[0]:.2f}–{spread[1]:.2f})" if spread and r["repeats"] > 1 else "")
        wps = f"{r['words_per_second'] / 1e3:,.0f}k" if r.get("words_per_second") else ""
        ratio = ""
        if "speedup_wall" in r:
            ratio = f"whole {r['speedup_wall']:.2f}×" + (f", train {r['speedup_train']:.2f}×"
                                                          if "speedup_train" in r else "") \
                + (f", CPU {r['speedup_cpu']:.2f}×" if "speedup_cpu" in r else "")
        mode = " ".join(x for x in (r.get("mode", ""), "hs" if r.get("hs") else "") if x)
        lines.append(f"| {name} | {mode} | {r['task']} | {r['threads']} | {r['epochs']} | "
                     f"{os.path.basename(r['corpus'])}"
                     f" | {wall} | {fmt(r.get('train_seconds'))} | {wps} | {fmt(r.get('rss_mb'), 0)} | "
                     f"{qual(r, 'ws353')} | {qual(r, 'simlex999')} | {qual(r, 'analogy')} | {ratio} |")
    lines += pass_table(rows)
    for k, v in meta.get("extra", {}).items():
        lines.append(f"\n{k}: {v}")
    return "\n".join(lines) + "\n"


def pass_table(rows):
    """Where each tool's whole-process time goes (medians, seconds): fastemb's passes as it reports them
    (start-up = interpreter, imports and the kernels' cache before the first pass; other = the rest of the
    wall time: the bench runner's own process and evaluation set-up), a peer's vocabulary and training."""
    out = []
    for r in rows:
        if "wall" not in r or r["task"] not in ("sgns", "cbow", "glove", "ppmi-svd"):
            continue
        p = r.get("passes")
        cells = ["", "", "", "", "", ""]
        if p:
            cells = [f"{p.get(k, 0):.2f}" if k in p else "" for k in ("startup", "read", "encode", "train", "write")]
            cells.append(f"{r['wall'] - sum(p.values()):.2f}")
        elif r.get("vocab_seconds") is not None:
            cells[1] = f"{r['vocab_seconds']:.2f} (vocabulary)"
            cells[3] = f"{r['train_seconds']:.2f}" if r.get("train_seconds") else ""
            cells[5] = f"{r['wall'] - r['vocab_seconds'] - (r.get('train_seconds') or 0):.2f}"
        else:
            cells[3] = f"{r['train_seconds']:.2f}" if r.get("train_seconds") else ""
        out.append(f"| {r['tool']} | {r['task']} | {r['threads']} | " + " | ".join(cells) + f" | {r['wall']:.2f} |")
    if not out:
        return []
    return ["", "Per pass, seconds (medians):", "",
            "| tool | task | threads | start-up | read + count | encode | train | write | other | whole |",
            "|---|---|---|---|---|---|---|---|---|---|"] + out
