"""The embedding-bag text classifier (fastemb.models.classify): its SGD step and gradient against numpy and finite
differences, n-gram hashing, reproducibility, accuracy on the KJV book-group task against the majority label
and a bag-of-words logistic regression, files (round trip, crafted files) and the CLI's one-line errors."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

import fastemb
import fastemb.models.classify as C
import fastemb.datasets as D
from conftest import CORPORA, assert_one_line_error, interrupt_cli, planted_corpus, run_cli, stop_at

MASK = (1 << 64) - 1


# ----------------------------------------------------------------------------------- numpy oracles
def softmax(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def ref_loss(emb, out, rows, label):
    h = emb[rows].mean(axis=0)
    return -np.log(softmax(out @ h)[label])


def ref_step(emb, out, rows, label, lr):
    """One SGD step of the embedding bag in float64: (emb, out, loss) after it."""
    emb, out = emb.astype(np.float64).copy(), out.astype(np.float64).copy()
    h = emb[rows].mean(axis=0)
    p = softmax(out @ h)
    g = lr * (np.eye(len(p))[label] - p)
    grad_h = g @ out                       # with the output weights before the step
    out += np.outer(g, h)
    for r in rows:                          # a repeated row gets its share once per occurrence
        emb[r] += grad_h / len(rows)
    return emb, out, -np.log(p[label])


def kernel_step(emb, out, rows, label, lr):
    K = C._kernels()
    emb, out = emb.astype(np.float32).copy(), out.astype(np.float32).copy()
    d, L = emb.shape[1], out.shape[0]
    rows = np.asarray(rows, np.int64)
    loss = K.sgd_step(emb, out, rows, len(rows), label, np.float32(lr), np.empty(d, np.float32),
                      np.empty(d, np.float32), np.empty(L, np.float32))
    return emb, out, loss


def tiny(seed=0, V=7, d=5, L=3):
    rng = np.random.default_rng(seed)
    # values exactly representable in float32, so both sides start from the same numbers
    return (rng.normal(0, 0.5, (V, d)).astype(np.float32).astype(np.float64),
            rng.normal(0, 0.5, (L, d)).astype(np.float32).astype(np.float64))


def test_one_sgd_step_equals_numpy():
    emb, out = tiny()
    rows = [0, 3, 3, 5]
    e1, o1, loss1 = ref_step(emb, out, rows, 1, 0.3)
    e2, o2, loss2 = kernel_step(emb, out, rows, 1, 0.3)
    np.testing.assert_allclose(e2, e1, atol=2e-6)
    np.testing.assert_allclose(o2, o1, atol=2e-6)
    assert loss2 == pytest.approx(loss1, rel=1e-5)
    untouched = [r for r in range(len(emb)) if r not in rows]
    assert np.array_equal(e2[untouched], emb[untouched])


def test_gradient_matches_finite_differences():
    emb, out = tiny(1)
    rows, label = [1, 2, 2, 6], 2
    e1, o1, _ = kernel_step(emb, out, rows, label, 1.0)   # lr 1: the step is minus the gradient
    g_emb, g_out = emb - e1, out - o1
    eps = 1e-6
    num_emb, num_out = np.zeros_like(emb), np.zeros_like(out)
    for a, num in ((emb, num_emb), (out, num_out)):
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = ref_loss(emb, out, rows, label)
            a[idx] = old - eps
            down = ref_loss(emb, out, rows, label)
            a[idx] = old
            num[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(g_emb, num_emb, atol=1e-5)
    np.testing.assert_allclose(g_out, num_out, atol=1e-5)
    assert np.abs(num_emb[2]).sum() > 0 and not num_emb[0].any()


# ---------------------------------------------------------------------------------------- hashing
def fnv1a(word):
    h = 0xCBF29CE484222325
    for b in word.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def ref_bucket(words, buckets):
    h = fnv1a(words[0])
    for w in words[1:]:
        h = (h * 116049371 + fnv1a(w)) & MASK
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & MASK
    return (h ^ (h >> 31)) % buckets


def test_ngram_hashing_is_stable_and_in_range():
    assert C.word_hashes(["", "a", "lord"]).tolist() == [fnv1a(""), fnv1a("a"), fnv1a("lord")]
    assert C.word_hashes(["a"]).tolist() == [0xAF63DC4C8601EC8C]  # FNV-1a 64's published value for "a"
    assert C.ngram_bucket(["the", "lord"], 200_000) == 24_337  # pinned: saved models keep their meaning
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdé€𝄞 "), rng.integers(1, 8))).strip() or "x" for _ in range(300)]
    for buckets in (1, 2, 7, 1000, 200_000, 99_999_989):
        got = [C.ngram_bucket([words[i], words[i + 1]], buckets) for i in range(0, 200, 2)]
        assert got == [ref_bucket([words[i], words[i + 1]], buckets) for i in range(0, 200, 2)]
        assert all(0 <= b < buckets for b in got)
    spread = {C.ngram_bucket([a, b], 1000) for a in words[:40] for b in words[40:80]}
    assert len(spread) > 700  # 1,600 distinct bigrams over 1,000 buckets


def test_document_rows_are_words_eos_and_ngram_buckets():
    types = ["the", "lord", "unknown"]
    tok = np.array([0, 1, 2], np.int32)
    type_row = np.array([0, 1, -1], np.int64)
    type_hash = C.word_hashes(types)
    eos_hash = C.word_hashes(["</s>"])[0]
    rows = np.zeros(16, np.int64)
    n = C._kernels().doc_rows(tok, 0, 3, type_row, type_hash, 10, 50, 3, 9, eos_hash, rows)
    seq = types + ["</s>"]
    expected = [0, 1, 9] + [10 + ref_bucket(seq[i:j], 50) for i in range(4) for j in range(i + 2, min(4, i + 3) + 1)]
    assert rows[:n].tolist() == expected
    n = C._kernels().doc_rows(tok, 0, 3, type_row, type_hash, 10, 50, 1, -1, eos_hash, rows)
    assert rows[:n].tolist() == [0, 1]


# -------------------------------------------------------------------------------------- training
def toy_lines(n=60, seed=0):
    rng = np.random.default_rng(seed)
    vocab = {"pos": "good great fine happy", "neg": "bad awful poor sad", "mix": "plain common usual"}
    lines = []
    for i in range(n):
        label = ["pos", "neg", "mix"][i % 3]
        words = rng.choice(vocab[label].split() + "the a of".split(), 6)
        lines.append(f"__label__{label} " + " ".join(words))
    return lines


def test_one_thread_is_reproducible_and_options_are_checked():
    lines = toy_lines()
    a = C.train(lines, threads=1, epochs=3, dim=8, ngrams=2, buckets=1000)
    b = C.train(lines, threads=1, epochs=3, dim=8, ngrams=2, buckets=1000)
    assert np.array_equal(a.embedding, b.embedding) and np.array_equal(a.output, b.output)
    assert a.embedding.shape == (len(a.words) + 1000, 8) and "</s>" in a.words
    c = C.train(lines, threads=1, epochs=3, dim=8, ngrams=2, buckets=1000, seed=2)
    assert not np.array_equal(a.output, c.output)
    for bad, name in (({"lr": 0}, "lr"), ({"ngrams": 0}, "ngrams"), ({"label_prefix": ""}, "label_prefix"),
                      ({"dim": 0}, "dim"), ({"window": 5}, "window")):
        with pytest.raises(fastemb.OptionError, match=name):
            C.train(lines, **bad)
    a = C.train(lines, epochs=30, dim=8, ngrams=2, buckets=1000)
    labels, probs = a.predict(["good great happy", "awful sad"], k=2)
    assert [x[0] for x in labels] == ["pos", "neg"] and probs.shape == (2, 2) and (probs[:, 0] >= probs[:, 1]).all()
    one_labels, one_probs = a.predict("good great", k=10)
    assert len(one_labels) == 3 and one_probs.sum() == pytest.approx(1, abs=1e-5)


def test_training_goes_through_the_epoch_loop_callbacks_and_early_stop():
    """The classifier's epochs run in fastemb.loop: callbacks see each epoch's loss and the word vectors,
    StopTraining ends training early, and the loss falls on separable toy data."""
    lines = toy_lines()
    seen = []

    def record(run):
        seen.append((run.epoch, run.loss, run.vectors.shape))
    clf = C.train(lines, threads=1, epochs=4, dim=8, callbacks=[record])
    assert [e for e, _, _ in seen] == [1, 2, 3, 4] and seen[0][2] == (len(clf.words), 8)
    assert clf.attrs["loss"] == [loss for _, loss, _ in seen] and seen[-1][1] < seen[0][1]

    class StopAfterTwo(fastemb.Callback):
        def on_epoch_end(self, run):
            if run.epoch == 2:
                raise fastemb.StopTraining
    short = C.train(lines, threads=1, epochs=10, dim=8, callbacks=[StopAfterTwo()])
    assert short.attrs["epochs_trained"] == 2 and len(short.attrs["loss"]) == 2


def test_multilabel_lines_and_test_metrics(tmp_path):
    clf = C.train(toy_lines(90), epochs=20, dim=8, threads=1)
    test = tmp_path / "t.txt"
    test.write_text("__label__pos good great happy\n"          # right
                    "__label__mix __label__pos good happy fine\n"  # right: pos is one of its labels
                    "__label__mix awful sad bad\n"              # wrong: predicted neg, first label mix
                    "__label__neg\n"                            # labels only: skipped
                    "just words without a label\n")             # no label: skipped
    r = clf.test(str(test))
    assert r["examples"] == 3 and r["accuracy"] == pytest.approx(2 / 3)
    assert r["skipped_no_text"] == 1 and r["skipped_no_label"] == 1
    i = {x: j for j, x in enumerate(r["labels"])}
    cm = r["confusion"]
    assert cm.sum() == 3 and cm[i["pos"], i["pos"]] == 2 and cm[i["mix"], i["neg"]] == 1
    assert r["per_label"]["pos"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
    assert r["per_label"]["mix"]["recall"] == 0 and np.isnan(r["per_label"]["mix"]["precision"])
    r2 = clf.test(str(test), k=2)
    assert r2["recall_at_k"] >= r["recall_at_k"] and r2["precision_at_k"] <= 1
    unseen = tmp_path / "u.txt"
    unseen.write_text("__label__pos good\n__label__new1 good\n__label__new2 bad\n")
    r3 = clf.test(str(unseen))
    assert r3["unknown_labels"] == {"new1": 1, "new2": 1} and r3["labels"][-2:] == ["new1", "new2"]
    assert r3["confusion"].shape == (5, 3)
    unseen.write_text("__label__new1 good\n")
    with pytest.raises(fastemb.FastembError, match="none of its labels is known"):
        clf.test(str(unseen))


def test_init_vectors_set_the_dimension(tmp_path):
    lines = toy_lines()
    vec = fastemb.Embeddings(["good", "bad", "elsewhere"], np.full((3, 12), 0.25, np.float32))
    clf = C.train(lines, init=vec, epochs=1, lr=1e-6, threads=1)
    assert clf.dim == 12
    np.testing.assert_allclose(clf.vectors[clf.index["good"]], 0.25, atol=1e-4)
    assert np.abs(clf.vectors[clf.index["great"]]).max() <= 1 / 12 + 1e-4
    with pytest.raises(fastemb.FastembError, match="init has 12 dimensions but dim is 20"):
        C.train(lines, init=vec, dim=20)


# ----------------------------------------------------------------------------- the KJV sample task
@pytest.fixture(scope="module")
def kjv_group(tmp_path_factory):
    return D.kjv_task("group", str(tmp_path_factory.mktemp("kjv") / "kjv-group"), corpora=CORPORA)


def test_kjv_task_files(kjv_group):
    assert kjv_group["train_lines"] + kjv_group["test_lines"] == 31102 and kjv_group["test_lines"] == 3110
    assert len(kjv_group["labels"]) == 8 and kjv_group["labels"]["law"] == 5852
    with open(kjv_group["test"]) as f:
        first = f.readline()
    assert first.startswith("__label__law ") and len(D.KJV_BOOKS) == 66
    assert D.kjv_label("Rev", "testament") == "new" and D.kjv_label("Mal", "testament") == "old"


@pytest.mark.slow
def test_kjv_groups_beat_majority_and_bag_of_words_logistic_regression(kjv_group, tmp_path):
    from bench.classify import bow_matrix, fit_logreg, majority, parse_labelled
    clf = C.train(kjv_group["train"], ngrams=2, epochs=25)
    acc = clf.test(kjv_group["test"])["accuracy"]
    train_texts, train_labels = parse_labelled(kjv_group["train"])
    test_texts, test_labels = parse_labelled(kjv_group["test"])
    base = majority(train_labels, test_labels)["accuracy"]
    # The baseline: tf-idf unigrams, multinomial logistic regression with the L2 penalty that
    # `python -m bench.classify` chose on a validation split (3e-6 of 1e-3..1e-6; held-out accuracy 0.761 there)
    names = sorted({x[0] for x in train_labels})
    X, vocab = bow_matrix(train_texts)
    W, b = fit_logreg(X, np.array([names.index(x[0]) for x in train_labels]), len(names), 3e-6, max_iter=200)
    pred = (bow_matrix(test_texts, vocab)[0] @ W + b).argmax(1)
    lr_acc = float(np.mean([names[p] in labs for p, labs in zip(pred, test_labels)]))
    assert base < 0.25 and lr_acc > 0.74, (base, lr_acc)  # the baseline is a real one
    assert acc > lr_acc + 0.01, (acc, lr_acc)
    # save / load: the same predictions
    path = tmp_path / "clf.h5"
    clf.save(path)
    again = C.Classifier.load(path)
    texts = test_texts[:200]
    texts = [" ".join(t) for t in texts] + ["", "zzz unknown words", "and jesus said"]
    assert np.array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    assert again.labels == clf.labels and again.words == clf.words and again.options == clf.options
    assert again.attrs["examples"] == clf.attrs["examples"]


# ------------------------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.h5"
    C.train(toy_lines(), epochs=2, dim=6, ngrams=2, buckets=50, threads=1).save(path)
    return path


def _nan_output(f):
    data = f["output"][()]
    data[0, 0] = np.nan
    del f["output"]
    f["output"] = data


def _replace(name, value):
    def edit(f):
        del f[name]
        f[name] = value
    return edit


def _drop_label(f):
    labels = [x.decode() for x in f["labels"][()]][:-1]
    del f["labels"]
    f.create_dataset("labels", data=np.array(labels, dtype=object), dtype=h5py.string_dtype())


def _set_attr(name, value):
    def edit(f):
        f.attrs[name] = value
    return edit


@pytest.mark.parametrize("edit,contains", [
    (_nan_output, "non-finite"),
    (_replace("embedding", np.zeros((5, 6), np.float32)), "/embedding has shape"),
    (_replace("output", np.zeros((3, 7), np.float32)), "/output has shape"),
    (_replace("output", np.zeros((3, 6), np.int32)), "expected floats"),
    (_drop_label, "n_labels"),
    (_set_attr("n_labels", 2), "n_labels"),
    (_set_attr("ngrams", 1), "/embedding has shape"),
    (_set_attr("buckets", 10 ** 9), "buckets"),
    (_set_attr("ngrams", 0), "ngrams"),
    (_set_attr("dim", 7), "shape"),
    (_set_attr("content", "embeddings"), "holds embeddings, not classifier"),
    (_replace("vocab/words", np.array(["a", "b"], dtype=object).astype("S")), "n_words"),
])
def test_crafted_classifier_files_are_refused(model_file, tmp_path, edit, contains):
    path = tmp_path / "bad.h5"
    shutil.copy(model_file, path)
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(fastemb.FastembError) as e:
        C.Classifier.load(path)
    assert contains in str(e.value) and "\n" not in str(e.value)


def test_drop_label_without_attr_is_refused(model_file, tmp_path):
    path = tmp_path / "bad.h5"
    shutil.copy(model_file, path)
    with h5py.File(path, "a") as f:
        _drop_label(f)
        del f.attrs["n_labels"]
    with pytest.raises(fastemb.FastembError, match="/output has shape"):
        C.Classifier.load(path)


# --------------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_train_predict_test(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("\n".join(toy_lines(90)) + "\n__label__pos\n")
    model = tmp_path / "m.h5"
    rc, out, err = run_cli("classify", "train", data, "-o", model, "--dim", "8", "--epochs", "30", "--ngrams", "2",
                           "--buckets", "1000", "--json")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["examples"] == 90 and summary["labels"] == 3 and summary["skipped_no_text"] == 1
    assert "1 line(s) with labels but no text skipped" in err and "examples/s" in err
    rc, out, err = run_cli("classify", "predict", model, "good great", "-", "-k", "2", stdin=b"awful sad\n")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("__label__pos ") and lines[1].startswith("__label__neg ")
    rc, out, err = run_cli("classify", "test", model, data, "--json", "--quiet")
    assert rc == 0, err
    r = json.loads(out)
    assert r["examples"] == 90 and r["accuracy"] > 0.9 and len(r["confusion"]) == 3
    rc, out, err = run_cli("classify", "test", model, data)
    assert rc == 0 and "accuracy" in out and "confusion matrix" in out


@pytest.mark.slow
def test_cli_bad_label_files_are_one_line_errors(tmp_path, model_file):
    files = {"empty.txt": b"", "nolabel.txt": b"just text\nmore text\n", "onlylabels.txt": b"__label__a\n__label__b\n",
             "garbage.bin": bytes(np.random.default_rng(0).integers(1, 256, 20000, dtype=np.uint8))}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    cases = [(["train", tmp_path / "empty.txt"], "empty"), (["train", tmp_path / "nolabel.txt"], "no labels"),
             (["train", tmp_path / "onlylabels.txt"], "no line has both a label and text"),
             (["train", tmp_path / "garbage.bin"], "no labels"), (["train", tmp_path / "missing.txt"], "no such file"),
             (["train", tmp_path / "nolabel.txt", "--init", tmp_path / "missing.h5"], "missing.h5"),
             (["train", tmp_path / "nolabel.txt", "--lr", "-1"], "--lr")]
    for args, contains in cases:
        out = tmp_path / "o.h5"
        rc, _, err = run_cli("classify", *args, "-o", out)
        assert_one_line_error(rc, err, contains=contains)
        assert not out.exists()
    unseen = tmp_path / "unseen.txt"
    unseen.write_text("__label__zzz good\n")
    rc, _, err = run_cli("classify", "test", model_file, unseen)
    assert_one_line_error(rc, err, contains="zzz")
    rc, _, err = run_cli("classify", "predict", tmp_path / "empty.txt", "text")
    assert_one_line_error(rc, err, contains="not an HDF5 file")
    rc, _, err = run_cli("classify", "predict", model_file, "text", "-k", "0")
    assert_one_line_error(rc, err, contains="-k")


def test_cli_init_dimension_mismatch(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("\n".join(toy_lines()) + "\n")
    vec = tmp_path / "v.h5"
    fastemb.Embeddings(["good", "bad"], np.ones((2, 12), np.float32)).save(vec)
    rc, _, err = run_cli("classify", "train", data, "-o", tmp_path / "o.h5", "--init", vec, "--dim", "20")
    assert_one_line_error(rc, err, contains="--init has 12 dimensions but --dim is 20")
    assert not (tmp_path / "o.h5").exists()
    rc, out, err = run_cli("classify", "train", data, "-o", tmp_path / "o.h5", "--init", vec, "--json", "--quiet")
    assert rc == 0 and json.loads(out)["dim"] == 12, err
    assert os.path.exists(tmp_path / "o.h5")


# ------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory):
    """A classifier run stopped after 1 of 3 epochs (checkpoint kept: no output), and its data."""
    d = tmp_path_factory.mktemp("clf-ck")
    data = d / "l.txt"
    data.write_text("\n".join(toy_lines(300)) + "\n")
    ck = d / "run.ckpt"
    C.train(str(data), dim=8, epochs=3, threads=1, ngrams=2, buckets=300, checkpoint=str(ck), checkpoint_every="1",
            callbacks=[stop_at(1)])
    assert ck.exists()
    return data, ck


def test_classifier_resumes_mid_epoch_to_the_uninterrupted_model(tmp_path, monkeypatch):
    """Checkpoints written between kernel calls (here one chunk a call, a checkpoint after every call) resume
    inside an epoch to the classifier an uninterrupted run gives, bit for bit at 1 thread: weights and losses."""
    from fastemb import loop
    monkeypatch.setattr(loop, "WORK_PER_CALL", 1 << 13)  # small chunks, one a call: about 10 calls an epoch
    data = tmp_path / "l.txt"
    data.write_text("\n".join(toy_lines(300)) + "\n")
    ck = tmp_path / "c.ckpt"
    kw = dict(dim=8, epochs=3, ngrams=2, buckets=500, threads=1)
    with pytest.raises(KeyboardInterrupt):
        C.train(str(data), checkpoint=str(ck), checkpoint_every="0.0001s",
                callbacks=[stop_at(2, midway=True, raising=KeyboardInterrupt)], **kw)
    with h5py.File(ck, "r") as f:
        state = json.loads(f.attrs["state"])
    assert state["epoch"] == 1 and 0 < state["pos"] < 1800 and state["block"] > 1  # inside epoch 2, after some calls
    resumed = C.train(resume=str(ck), checkpoint_every="100")  # (no more checkpoints: they take time)
    assert ck.exists()  # no output: the checkpoint is kept
    straight = C.train(str(data), **kw)
    np.testing.assert_array_equal(resumed.embedding, straight.embedding)
    np.testing.assert_array_equal(resumed.output, straight.output)
    assert resumed.attrs["loss"] == straight.attrs["loss"] and resumed.attrs["examples"] == straight.attrs["examples"]
    assert resumed.attrs["resumed_from"] == str(ck) and resumed.attrs["epochs_trained"] == 3


@pytest.mark.slow
def test_classifier_checkpoint_policy_is_train_s(tmp_path):
    """The policy of `fastemb train`: OUTPUT.ckpt kept when a run is interrupted; never overwritten by another
    run unless --force; a resumed run keeps the user's copy and removes its own checkpoint only once the model is
    saved for the output it was written for."""
    data = tmp_path / "l.txt"
    data.write_text("\n".join(toy_lines(300)) + "\n")
    out = tmp_path / "c.h5"
    kw = dict(dim=8, epochs=3, threads=1)
    with pytest.raises(KeyboardInterrupt):
        C.train(str(data), output=str(out), checkpoint_every="1", callbacks=[stop_at(2, raising=KeyboardInterrupt)],
                **kw)
    ck = tmp_path / "c.h5.ckpt"
    assert ck.exists() and not out.exists()
    saved = ck.read_bytes()
    rc, _, err = run_cli("classify", "train", data, "-o", out, "--dim", "8", "--checkpoint-every", "1")
    assert_one_line_error(rc, err, contains="--resume")
    assert ck.read_bytes() == saved and not out.exists()
    copy = tmp_path / "copy.ckpt"
    shutil.copy(ck, copy)
    rc, _, err = run_cli("classify", "train", "--resume", copy, "-o", tmp_path / "other.h5", "--quiet")
    assert rc == 0, err
    assert copy.read_bytes() == saved and ck.read_bytes() == saved  # a copy, and a run for another output: kept
    rc, _, err = run_cli("classify", "train", "--resume", ck, "-o", out, "--threads", "1", "--epochs", "3", "--quiet")
    assert rc == 0, err
    assert out.exists() and not ck.exists()  # the finished model supersedes its own checkpoint
    straight = C.train(str(data), **kw)
    for path in (out, tmp_path / "other.h5"):
        clf = C.Classifier.load(path)
        np.testing.assert_array_equal(clf.embedding, straight.embedding)
        np.testing.assert_array_equal(clf.output, straight.output)
    rc, _, err = run_cli("classify", "train", data, "-o", tmp_path / "n.h5", "--dim", "8", "--epochs", "2",
                         "--checkpoint-every", "1", "--quiet")
    assert rc == 0 and not (tmp_path / "n.h5.ckpt").exists(), err  # a finished run leaves no checkpoint


def _resealed(name, edit):
    """Change the record or state of a checkpoint and seal it again, as a crafted file would."""
    def apply(path):
        from fastemb.checkpoint import _header_digest
        with h5py.File(path, "a") as f:
            value = json.loads(f.attrs[name])
            edit(value)
            f.attrs[name] = json.dumps(value)
            f.attrs["header_sha256"] = _header_digest(str(f.attrs["record"]), str(f.attrs["state"]))
    return apply


def _array(name, make):
    def apply(path):
        from fastemb.checkpoint import digest
        with h5py.File(path, "a") as f:
            a = make(f["arrays"][name][()])
            del f["arrays"][name]
            f["arrays"].create_dataset(name, data=a).attrs["sha256"] = digest(a)
    return apply


@pytest.mark.parametrize("edit,contains", [
    (_array("output", lambda a: np.vstack([a, a[:1]])), "array output"),
    (_array("embedding", lambda a: np.full_like(a, np.nan)), "non-finite"),
    (_resealed("record", lambda r: r["fingerprint"].update(labels=4)), "array output"),
    (_resealed("record", lambda r: r["fingerprint"].update(labels=0)), "damaged checkpoint record"),
    (_resealed("record", lambda r: r["options"].update(buckets=7)), "array embedding"),
    (_resealed("record", lambda r: r.update(algo="sgns")), "not of a classifier"),
    (_resealed("record", lambda r: r.update(inputs=["l.txt"])), "damaged checkpoint record"),
    (_resealed("record", lambda r: r.update(init={"path": 3, "words": -1})), "damaged checkpoint record"),
    (_resealed("state", lambda s: s.update(epoch=1, block=1, pos=7, epoch_count=1)), "damaged checkpoint state"),
    (_resealed("state", lambda s: s.update(block=1, pos=10 ** 9)), "damaged checkpoint state"),
], ids=["labels-row", "nan", "record-labels", "no-labels", "buckets", "algo", "inputs", "init", "position",
        "past-the-end"])
def test_crafted_classifier_checkpoints_are_refused(classifier_ckpt, tmp_path, edit, contains):
    data, ck = classifier_ckpt
    bad = tmp_path / "bad.ckpt"
    shutil.copy(ck, bad)
    edit(bad)
    rc, _, err = run_cli("classify", "train", "--resume", bad, "-o", tmp_path / "o.h5")
    assert_one_line_error(rc, err, contains=contains)
    assert not (tmp_path / "o.h5").exists()


@pytest.mark.slow
def test_wrong_checkpoints_and_settings_are_refused(classifier_ckpt, tmp_path):
    """A checkpoint of another trainer, other options, other data or changed data: one line each, nothing read
    that the checkpoint does not vouch for."""
    data, ck = classifier_ckpt
    planted_corpus(tmp_path / "p.txt", sentences=200)
    sgns = tmp_path / "sgns.ckpt"
    fastemb.train(str(tmp_path / "p.txt"), dim=4, epochs=2, threads=1, checkpoint=str(sgns), checkpoint_every="1",
                  callbacks=[stop_at(1)])
    out = tmp_path / "o.h5"
    cases = [(["classify", "train", "--resume", sgns], "not of a classifier"),
             (["train", "--resume", ck], "the text classifier"),
             (["classify", "train", "--resume", ck, "--dim", "9"], "--dim is 9, but the run"),
             (["classify", "train", "--resume", ck, "--ngrams", "1"], "--ngrams is 1, but the run"),
             (["classify", "train", tmp_path / "p.txt", "--resume", ck], "differs from the data"),
             (["classify", "train", "-", "--checkpoint-every", "1"], "--checkpoint-every needs data"),
             (["classify", "train", data, "--checkpoint-every", "0"], "--checkpoint-every"),
             (["classify", "train"], "DATA is missing")]
    for args, contains in cases:
        rc, _, err = run_cli(*args, "-o", out, stdin=b"__label__a b\n")
        assert_one_line_error(rc, err, contains=contains)
        assert not out.exists()
    changed = tmp_path / "changed"
    changed.mkdir()
    shutil.copy(data, changed / "l.txt")
    moved = _resealed("record", lambda r: r["inputs"].update(
        data=str(changed / "l.txt"), sha256={str(changed / "l.txt"): r["inputs"]["sha256"][str(data)]}))
    copy = tmp_path / "copy.ckpt"
    shutil.copy(ck, copy)
    moved(copy)
    with open(changed / "l.txt", "a") as f:
        f.write("__label__pos good good\n")
    rc, _, err = run_cli("classify", "train", "--resume", copy, "-o", out)
    assert_one_line_error(rc, err, contains="SHA-256")
    assert ck.exists() and not out.exists()


def _signal_run(data, out):
    return ["classify", "train", data, "-o", out, "--dim", "300", "--epochs", "5", "--threads", "1",
            "--checkpoint-every", "1", "--quiet"]


@pytest.fixture(scope="module")
def signal_data(tmp_path_factory):
    """400 labels, 40,000 lines: an epoch of about a second at dim 300 on one thread; and the uninterrupted model."""
    d = tmp_path_factory.mktemp("clf-sig")
    rng = np.random.default_rng(0)
    data = d / "l.txt"
    with open(data, "w") as f:
        for i in range(40_000):
            label = i % 400
            f.write(f"__label__l{label} " + " ".join(f"w{(w + 7 * label) % 2000}" for w in rng.integers(0, 2000, 12))
                    + "\n")
    # the uninterrupted model from the same command in its own process, as the interrupted and resumed runs,
    # after a warm-up run that compiles and caches the kernels: a process that compiled a kernel itself can
    # differ in the last bits from the processes that load it from the cache (~1e-9 in 82% of the weights,
    # reproduced with a cold cache on a fresh clone; not understood: NOTES.md)
    with open(data) as f, open(d / "warm.txt", "w") as w:
        w.writelines(f.readlines()[:2000])
    rc, _, err = run_cli("classify", "train", str(d / "warm.txt"), "-o", str(d / "warm.h5"), "--dim", "300",
                         "--epochs", "2", "--threads", "1", "--checkpoint-every", "1", "--quiet")
    assert rc == 0, err
    straight = d / "straight.h5"
    rc, _, err = run_cli("classify", "train", str(data), "-o", str(straight), "--dim", "300", "--epochs", "5",
                         "--threads", "1", "--quiet")
    assert rc == 0, err
    return data, C.Classifier.load(straight)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_leaves_a_checkpoint_that_resumes(signal_data, tmp_path, sig, code):
    """`classify train --checkpoint-every 1` signalled inside epoch 2 (after the first checkpoint, so its kernels
    are compiled): exit 130 / 143, no model, the checkpoint kept; resumed, the model an uninterrupted run gives."""
    import signal
    data, straight = signal_data
    out = tmp_path / "c.h5"
    rc, err, _ = interrupt_cli(_signal_run(data, out), getattr(signal, sig), wait_for=f"{out}.ckpt",
                            delay=0.3)
    assert rc == code, err
    assert "Traceback" not in err and not out.exists() and sorted(os.listdir(tmp_path)) == ["c.h5.ckpt"]
    rc, _, err = run_cli("classify", "train", "--resume", f"{out}.ckpt", "-o", out, "--quiet")
    assert rc == 0, err
    assert not os.path.exists(f"{out}.ckpt")
    resumed = C.Classifier.load(out)
    # Equal to float32 rounding, not bit for bit: in CI (a fresh clone, the whole suite) the SIGINT case twice
    # gave ~1e-9 differences in most weights, which no local run reproduced (cold or warm cache, loaded or
    # not; NOTES.md). A resume at a wrong chunk changes the weights by orders of magnitude more; bit-identical
    # resumption is asserted in-process by test_classifier_resumes_mid_epoch_to_the_uninterrupted_model.
    np.testing.assert_allclose(resumed.embedding, straight.embedding, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(resumed.output, straight.output, rtol=1e-4, atol=1e-7)
    assert resumed.attrs["loss"] == pytest.approx(straight.attrs["loss"], rel=1e-6)
    assert resumed.attrs["resumed_from"].endswith(".ckpt")
