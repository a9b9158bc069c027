"""Sample datasets built from the corpora shipped in the repository (corpora/): the text-classification task of
the King James Bible, each verse labelled by its book's group, testament or book (corpora/README.md)."""
from __future__ import annotations

import os

from fastemb.errors import FileError, OptionError
from fastemb.models.classify import text_lines
from fastemb.seeding import generator

KJV_GROUPS = (
    ("law", "Ge Exo Lev Num Deu"),
    ("history", "Josh Jdgs Ruth 1Sm 2Sm 1Ki 2Ki 1Chr 2Chr Ezra Neh Est"),
    ("wisdom", "Job Psa Prv Eccl SSol"),
    ("major-prophets", "Isa Jer Lam Eze Dan"),
    ("minor-prophets", "Hos Joel Amos Obad Jonah Mic Nahum Hab Zep Hag Zec Mal"),
    ("gospels-acts", "Mat Mark Luke John Acts"),
    ("pauline", "Rom 1Cor 2Cor Gal Eph Phi Col 1Th 2Th 1Tim 2Tim Titus Phmn"),
    ("general-revelation", "Heb Jas 1Pet 2Pet 1Jn 2Jn 3Jn Jude Rev"),
)
KJV_BOOKS = [b for _, books in KJV_GROUPS for b in books.split()]   # the 66 books, in canonical order
KJV_TASKS = ("group", "testament", "book")


def kjv_label(book: str, task: str) -> str:
    """A book's label: its group (8, KJV_GROUPS), its testament (old / new) or the book itself."""
    if task == "book":
        return book
    if task == "testament":
        return "old" if KJV_BOOKS.index(book) < 39 else "new"
    return next(g for g, books in KJV_GROUPS if book in books.split())



def kjv_task(task="group", prefix=None, *, corpora="corpora", test_every=10, seed=1, label_prefix="__label__",
             force=True) -> dict:
    """Write the sample classification task: each verse of corpora/kjv.txt.gz labelled by its book's group
    (task "group": law, history, wisdom, major-prophets, minor-prophets, gospels-acts, pauline,
    general-revelation), its testament ("testament") or its book ("book"), the book taken from the aligned
    corpora/kjv-books.txt.gz. Every `test_every`-th verse (the 10th, 20th, ...) goes to PREFIX.test in
    canonical order, the others to PREFIX.train, shuffled with `seed` (fastText reads a file in order, so an
    unshuffled file would favour the last books). PREFIX defaults to kjv-TASK. Returns the paths and counts."""
    from fastemb.store import atomic_output, check_output
    if task not in KJV_TASKS:
        raise OptionError("task", f"must be one of {', '.join(KJV_TASKS)} (got {task!r})")
    if isinstance(test_every, bool) or not isinstance(test_every, int) or test_every < 2:
        raise OptionError("test_every", f"must be an integer of at least 2 (got {test_every!r})")
    prefix = prefix or f"kjv-{task}"
    text_path = os.path.join(corpora, "kjv.txt.gz")
    books_path = os.path.join(corpora, "kjv-books.txt.gz")
    verses, books = list(text_lines(text_path)), list(text_lines(books_path))
    if len(verses) != len(books):
        raise FileError(f"{books_path}: {len(books):,} lines for the {len(verses):,} verses of {text_path}: rebuild "
                        f"both with bin/make_sample_corpus.py")
    unknown = sorted(set(books) - set(KJV_BOOKS))
    if unknown:
        raise FileError(f"{books_path}: unknown book name(s): {', '.join(unknown[:5])}")
    lines = [f"{label_prefix}{kjv_label(b, task)} {v}" for b, v in zip(books, verses)]
    test = [x for i, x in enumerate(lines) if i % test_every == test_every - 1]
    train_lines = [x for i, x in enumerate(lines) if i % test_every != test_every - 1]
    train_lines = [train_lines[i] for i in generator(seed).permutation(len(train_lines))]
    out = {"train": f"{prefix}.train", "test": f"{prefix}.test"}
    for which, chunk in (("train", train_lines), ("test", test)):
        check_output(out[which], force)
        with atomic_output(out[which]) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(chunk) + "\n")
    labels = {}
    for b in books:
        name = kjv_label(b, task)
        labels[name] = labels.get(name, 0) + 1
    return {**out, "train_lines": len(train_lines), "test_lines": len(test), "labels": labels}
