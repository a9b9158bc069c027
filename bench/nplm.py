"""The NPLM against KenLM's modified Kneser-Ney 3-gram and 5-gram (issue 29's protocol), in one run:

    python -m bench.nplm [--kenlm DIR] [--json OUT] [--epochs N] [--corpus TEXT] [--min-count 5] [OPTION=VALUE ...]

Protocol: every 20th line (verse) of the shipped sample (0, 20, 40, ...; or of --corpus) is held out, the others
train; words with a training count below --min-count (5) become the one word <oov> in both (KenLM reserves <unk> for itself); every
line ends with an end-of-sentence event (KenLM's </s>; for the NPLM the word </s> appended to each training
line, scored with `eval --eos`). KenLM (`lmplz -o 3` / `-o 5`, built from source: --kenlm names the directory
holding lmplz, default $KENLM_BIN or /tmp/kenlm-build/build/bin) is timed and its ARPA output is scored by
fastemb.arpa; without lmplz the benchmark falls back to bench/ngram.py's interpolated modified Kneser-Ney
trigram and says so. The NPLM trains with its defaults plus the given options; its held-out perplexity is
measured after every epoch (not timed): with valid=F that is the model kept so far (the best epoch's), and
the validation figure beside it the epoch's own. The mixture NPLM + KN 5-gram: the weight is chosen by 2-fold
cross-validation on the held-out text (chosen on the odd lines and applied to the even ones, and the
reverse), so no line is scored with a weight fitted on it.

Speed: the full softmax's floating-point work per token is 6·(hidden·context·dim + hidden2·hidden + rows·V), rows
the output layer's (hidden2, or hidden without a second layer), + 6·V·context·dim with direct connections: a
forward and two backward products per layer; + 3·(ngram_order − 1)·V with n-gram features (each order's slice added
to the logits, and its SGD step). It is stated as
GFLOP/s over the training wall time and over the main thread's CPU time (the critical path: the wall time on
idle cores, the other threads' slices of the vocabulary being as big; on a shared machine the wall time counts
what others took), against the machine's nominal peak (cores × clock × 32 single-precision FLOP per cycle for
AVX2 with two FMA units), and per CPU second against one BLAS thread's plain sgemm of the output layer's shape
measured in the same run (what BLAS reaches on this machine now).
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import math
import os
import platform
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "corpora", "kjv.txt.gz")
OOV, EOS = "<oov>", "</s>"


def split(directory, held_every=20, min_count=5, corpus=SAMPLE):
    """train.txt / held.txt (KenLM's input: words only) and train.eos.txt (the NPLM's: each line + ' </s>')."""
    with (gzip.open(corpus, "rt", encoding="utf-8") if corpus.endswith(".gz")
          else open(corpus, encoding="utf-8", errors="replace")) as f:
        lines = [ln.split() for ln in f]
    train = [s for i, s in enumerate(lines) if i % held_every and s]
    held = [s for i, s in enumerate(lines) if i % held_every == 0 and s]
    counts = collections.Counter(w for s in train for w in s)
    keep = {w for w, c in counts.items() if c >= min_count}
    paths = {}
    for name, data in (("train", train), ("held", held)):
        mapped = [[w if w in keep else OOV for w in s] for s in data]
        paths[name] = os.path.join(directory, name + ".txt")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.writelines(" ".join(s) + "\n" for s in mapped)
        if name == "train":
            paths["train_eos"] = os.path.join(directory, "train.eos.txt")
            with open(paths["train_eos"], "w", encoding="utf-8") as f:
                f.writelines(" ".join(s) + f" {EOS}\n" for s in mapped)
        else:
            paths["held_lines"] = mapped
    paths["words"] = len(keep) + 2          # the kept words, <oov> and </s>
    paths["train_tokens"] = sum(map(len, train))
    return paths


def sentences(path, emb):
    """A text as the models see it: its sentences as ids of `emb`'s vocabulary, other words dropped."""
    from fastemb.vocab import build_vocab, iter_blocks
    out = []
    with build_vocab([path], encode=True, base=emb) as enc:
        for ids, ends, _ in iter_blocks(enc):
            out += np.split(ids.astype(np.int64), ends[:-1])
    return out


def kenlm(bin_dir, order, paths, directory):
    from fastemb.arpa import ArpaModel
    arpa = os.path.join(directory, f"kn{order}.arpa")
    t = time.perf_counter()
    with open(paths["train"], "rb") as src, open(arpa, "wb") as dst:
        subprocess.run([os.path.join(bin_dir, "lmplz"), "-o", str(order), "-S", "1G", "-T", directory],
                       stdin=src, stdout=dst, stderr=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - t
    model = ArpaModel.load(arpa)
    r = model.score_lines(paths["held_lines"])
    return model, {"model": f"KenLM modified KN {order}-gram", "train_seconds": seconds,
                   "perplexity": r["perplexity"], "tokens": r["tokens"], "log10_probs": r["log10_probs"]}


def fallback_trigram(paths, emb):
    """Without KenLM: bench/ngram.py's interpolated modified Kneser-Ney trigram on the NPLM's ids, fitted on
    the training lines with their </s> and scored on the held-out lines with theirs (the same events)."""
    from bench.ngram import KneserNeyTrigram
    index = emb.index
    t = time.perf_counter()
    kn = KneserNeyTrigram(len(emb)).fit(sentences(paths["train_eos"], emb))
    seconds = time.perf_counter() - t
    held = [np.array([index[w] for w in s] + [index[EOS]], np.int64) for s in paths["held_lines"]]
    lp = kn.log_probs(held)
    return {"model": "bench/ngram.py interpolated modified KN 3-gram (no KenLM)", "train_seconds": seconds,
            "perplexity": math.exp(-lp.mean()), "tokens": len(lp), "log10_probs": lp / math.log(10)}


def sgemm_gflops(m, k, n, seconds=2.0):
    """GFLOP/s of one BLAS thread (as training runs them) on [m, k]·[k, n], over its CPU time (the machine is
    shared: CPU time is what this thread got)."""
    from fastemb.parallel import blas_threads
    a = np.random.default_rng(0).random((m, k), dtype=np.float32)
    b = np.random.default_rng(1).random((n, k), dtype=np.float32)
    with blas_threads(1):
        a @ b.T
        reps, t = 0, time.thread_time()
        while time.thread_time() - t < seconds:
            a @ b.T
            reps += 1
        return 2.0 * m * k * n * reps / (time.thread_time() - t) / 1e9


def nominal_peak_gflops():
    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            mhz = max(float(ln.split(":")[1]) for ln in f if ln.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    return (os.cpu_count() or 1) * (mhz or 2000.0) / 1000 * 32, mhz


def flops_per_token(o, V):
    from fastemb.models.nplm import ngram_order_of
    nd = o.context * o.dim
    return (6 * (o.hidden * nd + o.hidden2 * o.hidden + (o.hidden2 or o.hidden) * V) + (6 * V * nd if o.direct else 0)
            + 3 * max(ngram_order_of(o, V) - 1, 0) * V)


def run_nplm(paths, options):
    import fastemb
    from fastemb.models.nplm import LanguageModel, NPLMOptions
    per_epoch = []
    t0 = time.perf_counter()

    def measure(run):
        t, c, m = time.perf_counter(), time.process_time(), time.thread_time()
        train_s = t - t0 - sum(e["eval_seconds"] for e in per_epoch)
        train_cpu = c - cpu - sum(e["eval_cpu_seconds"] for e in per_epoch)
        r = LanguageModel(run.embeddings()).score_events(paths["held_lines"], eos=True, unk=OOV)
        valid = run.trainer.valid_perplexities
        per_epoch.append({"epoch": run.epoch, "tokens": run.trainer.work_per_epoch, "words_per_second": run.rate,
                          "perplexity": r["perplexity"],
                          "valid_perplexity": valid[-1] if valid else None, "eval_seconds": time.perf_counter() - t,
                          "eval_cpu_seconds": time.process_time() - c, "train_seconds": train_s,
                          "eval_main_seconds": time.thread_time() - m, "train_cpu_seconds": train_cpu,
                          "train_main_seconds": m - main - sum(e["eval_main_seconds"] for e in per_epoch)})
        print(f"  nplm epoch {run.epoch}: {train_s:.1f} s ({train_cpu:.1f} s CPU) so far, {run.rate:,.0f} words/s, "
              f"held-out perplexity {r['perplexity']:.2f}" + (f" (validation {valid[-1]:.2f})" if valid else ""),
              flush=True)
    cpu, main = time.process_time(), time.thread_time()
    emb = fastemb.train(paths["train_eos"], "nplm", min_count=1, callbacks=[measure], **options)
    cpu = time.process_time() - cpu - sum(e["eval_cpu_seconds"] for e in per_epoch)
    main = time.thread_time() - main - sum(e["eval_main_seconds"] for e in per_epoch)
    wall = time.perf_counter() - t0
    lm = LanguageModel(emb)
    final = lm.score_events(paths["held_lines"], eos=True, unk=OOV)
    o = NPLMOptions(**{k: v for k, v in options.items() if k in NPLMOptions.specs()})
    train_s = wall - sum(e["eval_seconds"] for e in per_epoch)
    seen = sum(e["tokens"] for e in per_epoch)
    return lm, final, {"model": "fastemb nplm", "options": options, "epochs": per_epoch, "train_seconds": train_s,
                       "train_tokens_seen": seen,
                       "cpu_seconds": cpu, "main_thread_seconds": main, "words": len(emb), "best_epoch": emb.attrs.get("best_epoch"),
                       "perplexity": final["perplexity"], "tokens": final["tokens"],
                       "flops_per_token": flops_per_token(o, len(emb)),
                       "words_per_second": seen / train_s}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kenlm", default=os.environ.get("KENLM_BIN", "/tmp/kenlm-build/build/bin"))
    p.add_argument("--json", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--corpus", default=SAMPLE, help="text to split (default: the shipped KJV sample; e.g. "
                                                     "bench/cache/en1m.txt, the benchmark corpus's first million "
                                                     "tokens, for a larger vocabulary)")
    p.add_argument("--min-count", type=int, default=5, help="training count below which a word is <oov>")
    p.add_argument("options", nargs="*", help="nplm options as NAME=VALUE (context=4 hidden=100 ...)")
    a = p.parse_args(argv)
    from fastemb.arpa import best_mixture_weight, mixture_log_probs
    from fastemb.models.nplm import NPLMOptions
    specs = NPLMOptions.specs()
    options = {"threads": 2}
    for item in a.options:
        name, value = item.split("=", 1)
        kind = specs[name][1].kind if name in specs else int
        options[name] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    if a.epochs:
        options["epochs"] = a.epochs
    peak, mhz = nominal_peak_gflops()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mhz:.0f} MHz",
               "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"), "models": []}
    with tempfile.TemporaryDirectory() as d:
        paths = split(d, min_count=a.min_count, corpus=a.corpus)
        print(f"{paths['words']:,} words (train count >= {a.min_count}, <oov>, </s>), {paths['train_tokens']:,} training "
              f"tokens, {len(paths['held_lines']):,} held-out lines", flush=True)
        ngram = {}
        lmplz = os.path.join(a.kenlm, "lmplz")
        if os.access(lmplz, os.X_OK):
            for order in (3, 5):
                model, r = kenlm(a.kenlm, order, paths, d)
                ngram[order] = r
                print(f"  KenLM {order}-gram: {r['train_seconds']:.1f} s, held-out perplexity {r['perplexity']:.2f}",
                      flush=True)
        else:
            print(f"  no lmplz in {a.kenlm}: the n-gram baseline is bench/ngram.py's modified Kneser-Ney trigram",
                  flush=True)
        lm, final, r = run_nplm(paths, options)
        if not ngram:
            ngram[3] = fallback_trigram(paths, lm.emb)
            print(f"  bench/ngram.py's KN 3-gram: {ngram[3]['train_seconds']:.1f} s, held-out perplexity "
                  f"{ngram[3]['perplexity']:.2f}", flush=True)
        results["models"] = [{k: v for k, v in m.items() if k != "log10_probs"} for m in ngram.values()]
        results["models"].append(r)
        o = NPLMOptions(**{k: v for k, v in options.items() if k in specs})
        V = r["words"]
        tokens = r["train_tokens_seen"]
        gflop = r["flops_per_token"] * tokens / r["train_seconds"] / 1e9
        gflop_main = r["flops_per_token"] * tokens / r["main_thread_seconds"] / 1e9
        gflop_cpu = r["flops_per_token"] * tokens / r["cpu_seconds"] / 1e9
        ref = sgemm_gflops(o.batch, o.hidden2 or o.hidden, V)
        results["speed"] = {"gflops_per_token": r["flops_per_token"] / 1e9, "gflops": gflop,
                            "gflops_main_thread": gflop_main, "gflops_per_cpu_second": gflop_cpu,
                            "nominal_peak_gflops": peak, "fraction_of_peak": gflop / peak,
                            "fraction_of_peak_main_thread": gflop_main / peak, "sgemm_gflops_one_thread": ref,
                            "fraction_of_sgemm_per_cpu_second": gflop_cpu / ref}
        if ngram:   # the mixture with the highest order there is (KenLM's 5-gram, or the fallback trigram)
            top = max(ngram)
            a_lp = final["log_probs"]
            b_lp = ngram[top]["log10_probs"] * math.log(10)
            halves = np.zeros(len(a_lp), bool)
            sent = final["sentence"]
            halves[sent % 2 == 1] = True
            mix = np.empty(len(a_lp))
            weights = []
            for fit, apply in ((halves, ~halves), (~halves, halves)):
                w = best_mixture_weight(a_lp[fit], b_lp[fit])
                weights.append(w)
                mix[apply] = mixture_log_probs(a_lp[apply], b_lp[apply], w)
            results["mixture"] = {"weights": weights, "perplexity": math.exp(-mix.mean()), "order": top,
                                  "vs_ngram": math.exp(-mix.mean()) / ngram[top]["perplexity"] - 1}
    print(f"\n{results['machine']}, load average {results['load_average'][0]:.1f}, {results['date']}")
    print("| model | train s | words/s | held-out perplexity (with </s>) |")
    print("|---|---|---|---|")
    for m in results["models"]:
        curve = ""
        if "epochs" in m:
            curve = " (by epoch: " + ", ".join(f"{e['perplexity']:.1f}" for e in m["epochs"]) + ")"
        wps = f"{m['words_per_second']:,.0f}" if "words_per_second" in m else ""
        print(f"| {m['model']} | {m['train_seconds']:.1f} | {wps} | {m['perplexity']:.2f}{curve} |")
    if "mixture" in results:
        mx = results["mixture"]
        print(f"| mixture nplm + KN {mx['order']}-gram (weights {mx['weights'][0]:.2f}, {mx['weights'][1]:.2f}, "
              f"2-fold) | | | {mx['perplexity']:.2f} ({100 * mx['vs_ngram']:+.1f}% vs the {mx['order']}-gram) |")
    for m in results["models"]:
        if "epochs" in m:
            print(f"\nnplm: {m['train_seconds']:.1f} s wall in training, {m['cpu_seconds']:.1f} s of CPU over all "
                  f"threads, {m['main_thread_seconds']:.1f} s of it the main thread's (the critical path: the wall "
                  f"time on idle cores, each thread a core)\n"
                  "| epoch | wall s | CPU s | main-thread CPU s | words/s (wall) | held-out perplexity |\n"
                  "|---|---|---|---|---|---|")
            for e in m["epochs"]:
                print(f"| {e['epoch']} | {e['train_seconds']:.1f} | {e['train_cpu_seconds']:.1f} | "
                      f"{e['train_main_seconds']:.1f} | {e['words_per_second']:,.0f} | {e['perplexity']:.2f} |")
    s = results["speed"]
    print(f"\nfull softmax: {s['gflops_per_token'] * 1e3:.2f} MFLOP/token; {s['gflops']:.1f} GFLOP/s over the wall "
          f"time = {100 * s['fraction_of_peak']:.1f}% of the nominal peak {s['nominal_peak_gflops']:.0f} GFLOP/s; "
          f"{s['gflops_main_thread']:.1f} GFLOP/s over the main thread's CPU time (idle cores) = "
          f"{100 * s['fraction_of_peak_main_thread']:.1f}% of the peak; {s['gflops_per_cpu_second']:.1f} GFLOP per "
          f"CPU second = {100 * s['fraction_of_sgemm_per_cpu_second']:.0f}% of one BLAS thread's plain sgemm of the "
          f"output layer's shape ({s['sgemm_gflops_one_thread']:.1f} GFLOP/s per CPU second)")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, default=float)
    return results


if __name__ == "__main__":
    main()
