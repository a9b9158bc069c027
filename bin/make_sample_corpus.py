#!/usr/bin/env python3
"""Build corpora/kjv.txt.gz, the sample corpus shipped with fastemb, reproducibly.

Source: the King James Version of the Bible (public domain) from Debian's `bible-kjv-text` package,
decoded by the `bible` program of Debian's `bible-kjv` package (run from the unpacked folder, no install).
Both are fetched with `apt-get download` and unpacked with `dpkg-deb -x` (no root needed).

Output: one verse a line, lower-cased, punctuation split off as separate tokens (apostrophes inside words
kept: "lord's"), tokens separated by single spaces; gzip -9 with a zero timestamp so the file is
byte-identical from run to run. Beside it, corpora/kjv-books.txt.gz: each verse's book as `bible -f` names
it in the verse's reference ("Ge1:1" -> "Ge"), one a line, aligned line by line with kjv.txt.gz (the labels
of the text-classification sample task: fastemb.datasets.kjv_task).

    python bin/make_sample_corpus.py            # writes corpora/kjv.txt.gz and corpora/kjv-books.txt.gz
"""
import argparse
import glob
import gzip
import os
import re
import subprocess
import sys
import tempfile

PACKAGES = ["bible-kjv-text", "bible-kjv"]
TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")


def fetch(workdir):
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    root = os.path.join(workdir, "root")
    for deb in sorted(glob.glob(os.path.join(workdir, "*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


def verses(root):
    """(book, verse text) of every verse in canonical order."""
    exe = os.path.join(root, "usr/bin/bible")
    # -f: plain output, one verse a line, "Ge1:1 In the beginning ..."
    out = subprocess.run([exe, "-f", "-p", os.path.join(root, "usr/lib"), "Gen1:1-Rev22:21"], check=True,
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL).stdout
    for line in out.decode("utf-8").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1].strip():
            book = re.fullmatch(r"(.+?)\d+:\d+", parts[0])
            if book is None:
                raise SystemExit(f"unexpected verse reference {parts[0]!r}")
            yield book.group(1), parts[1]


def gzip_writer(raw):
    return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "corpora", "kjv.txt.gz"))
    ap.add_argument("--books-out", default=None,
                    help="each verse's book, one a line (default: kjv-books.txt.gz beside --out)")
    ap.add_argument("--deb-root", help="folder where the two packages are already unpacked")
    args = ap.parse_args()
    books_out = args.books_out or os.path.join(os.path.dirname(args.out), "kjv-books.txt.gz")
    with tempfile.TemporaryDirectory() as work:
        root = args.deb_root or fetch(work)
        n_lines = n_tokens = 0
        tmp, tmp_books = args.out + ".part", books_out + ".part"
        books = []
        with open(tmp, "wb") as raw, gzip_writer(raw) as gz, open(tmp_books, "wb") as raw_books, \
                gzip_writer(raw_books) as gz_books:
            for book, verse in verses(root):
                tokens = TOKEN.findall(verse.lower())
                gz.write((" ".join(tokens) + "\n").encode("utf-8"))
                gz_books.write((book + "\n").encode("utf-8"))
                n_lines += 1
                n_tokens += len(tokens)
                if not books or books[-1] != book:
                    books.append(book)
        os.replace(tmp, args.out)
        os.replace(tmp_books, books_out)
    print(f"{args.out}: {n_lines} verses, {n_tokens} tokens", file=sys.stderr)
    print(f"{books_out}: the book of each verse ({len(books)} books)", file=sys.stderr)


if __name__ == "__main__":
    main()
