"""English-German bilingual embedding benchmark built from Debian packages (bookworm).

    python -m bench.bilingual [--cache DIR] [--force] [--seed N] [--jobs N]

Outputs, under ``bench/cache/bilingual/`` by default (git-ignored):

``de.txt`` / ``en.txt``
    Comparable monolingual corpora: one paragraph per line, lower-cased, words of Latin letters and digits
    (German ä ö ü ß and other accented letters kept as they are; internal hyphens and apostrophes kept;
    every other character separates words), tokens without a letter dropped, lines of fewer than 3 tokens
    dropped, exact duplicate lines dropped, lines shuffled with the seed. Both come from the same kinds of
    text, mostly translations of each other (shuffled, so not aligned):

    ====================================  =========================================  ======================
    German                                English                                    kind
    ====================================  =========================================  ======================
    manpages-de 4.18.1-1,                 the same pages (section + name) from       man pages, rendered by
    manpages-de-dev 4.18.1-1, and the     manpages 6.03-2, manpages-dev 6.03-2 and   groff -Tutf8 -mandoc;
    German pages shipped by the packages  the packages in MAN_EN (systemd 252.39,    SYNOPSIS, SEE ALSO,
    in MAN_EN (apt, dpkg, man-db, ...)    coreutils 9.1-1, util-linux 2.38.1, ...)   AUTHORS, translator
                                                                                     credits etc. dropped
    debian-reference-de 2.100             debian-reference-en 2.100                  DocBook HTML
    debian-faq-de 11.1                    debian-faq 11.1                            DocBook HTML
    developers-reference-de 12.18         developers-reference 12.18                 Sphinx HTML
    maint-guide-de 1.2.53                 maint-guide 1.2.53                         DocBook HTML
    debian-edu-doc-de 2.12.23~deb12u1     debian-edu-doc-en 2.12.23~deb12u1          HTML (bookworm manual)
    gimp-help-de 2.10.34-2                gimp-help-en 2.10.34-2                     DocBook HTML
    libreoffice-help-de 4:7.4.7-1+deb12u14  libreoffice-help-en-us (same)            HTML
    kicad-doc-de 6.0.11+dfsg-1            kicad-doc-en 6.0.11+dfsg-1                 Asciidoc HTML
    udo-doc-de 6.4.1-6                    udo-doc-en 6.4.1-6                         HTML
    fortunes-de 0.35-1                    fortunes 1:1.99.1-7.3                      fortune cookies (not
                                                                                     translations)
    ====================================  =========================================  ======================

    HTML is reduced to its running text (scripts, styles, <pre> blocks, navigation bars, hidden spans and
    tables of contents dropped; block elements end a line). URLs, e-mail addresses, absolute paths and
    command-line options (``-a``, ``--all``) are removed before tokenizing. A line is dropped from one
    language's corpus when it has more function words of the other language than of its own (catches
    untranslated paragraphs in the translations).

``lexicon.tsv``
    ``english<TAB>german`` pairs from FreeDict's Ding-derived dictionaries dict-freedict-eng-deu
    2022.04.21-1 and dict-freedict-deu-eng 2022.04.21-1 (dictd .index/.dict.dz; union of both directions):
    headword against each comma/semicolon-separated translation of its translation lines (examples,
    notes, synonyms and see-also lines ignored; <...>, [...], (...) annotations removed), lower-cased, both
    sides a single alphabetic word (a-z for English, a-z ä ö ü ß for German), and both words seen at least
    5 times in their corpus. Sorted by English then German word.

``train.tsv`` / ``test.tsv``
    Split by English source word (all translations of a word on one side): the sorted source words are
    shuffled with the seed, the first 1,500 (or 20% if fewer than 7,500 source words) go to test.
``train-200.tsv`` / ``train-1000.tsv``
    The 200 / 1,000 most frequent (in en.txt) source words of train.tsv with all their translations.
``packages.tsv``
    Name and version of every package the run downloaded (``apt-get download`` fetches the current
    candidate, so a Debian point release can change the outputs; compare this file).

Figures of the reference run (Debian 12 "bookworm" mirror as of Debian 12.11, seed 12345; 129 packages,
versions in packages.tsv; a full build takes about 2.5 minutes on 2 cores, a third of it groff):

    man      1,369 German/English page pairs
    de.txt   2,135,410 tokens, 110,578 lines, 110,428 types, 22,346 with count >= 5
             (man pages 958k, libreoffice-help 447k, fortunes 377k, gimp-help 157k, the rest 196k)
    en.txt   2,388,850 tokens, 114,725 lines,  54,690 types, 15,860 with count >= 5
             (man pages 1,026k, libreoffice-help 465k, fortunes 375k, gimp-help 253k, the rest 269k)
    lexicon  19,724 pairs (of 265,874 single-word FreeDict pairs), 7,612 English / 7,539 German words,
             565 identical pairs (e.g. ``system``/``system``)
    test     1,500 source words, 3,766 pairs;  train 6,112 source words, 15,958 pairs
    seeds    train-1000: 4,156 pairs;  train-200: 1,036 pairs

The German sides of kicad-doc and gimp-help are partly untranslated; the language filter drops those
paragraphs, so those sources are smaller in de.txt than in en.txt.

Every step is deterministic (sorted file lists, fixed seed, no timestamps in outputs) and skipped when its
outputs exist, unless --force.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import glob
import gzip
import html.parser
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import unicodedata

from bench.corpus import B64, CACHE, stats

OUT = os.path.join(CACHE, "bilingual")
SEED = 12345
MIN_COUNT = 5
MIN_LINE_TOKENS = 3
TEST_WORDS = 1500
SEED_SIZES = (200, 1000)

# Packages whose English man pages are the originals of the German translations (manpages-de translates
# pages of many upstream projects); some of them also ship German pages, which go to de.txt. Only pages
# with a German counterpart are used on either side.
MAN_EN = ["manpages", "manpages-dev", "systemd", "systemd-container", "systemd-homed", "systemd-resolved",
          "systemd-journal-remote", "systemd-oomd", "systemd-boot", "systemd-userdbd", "systemd-coredump",
          "udev", "systemd-sysv", "systemd-timesyncd", "libnss-systemd", "libnss-myhostname",
          "libnss-mymachines", "libnss-resolve", "libpam-systemd", "coreutils", "util-linux",
          "util-linux-extra", "gettext", "gettext-base", "openssh-client", "openssh-server", "gzip", "uuid-dev",
          "uuid-runtime", "bzip2", "bsdextrautils", "bsdutils", "mount", "less", "init-system-helpers",
          "hostname", "e2fsprogs", "libcrypt-dev", "grep", "diffutils", "zstd", "tar", "ncurses-bin", "make",
          "ed", "bash", "locales", "sed", "findutils", "file", "procps", "dpkg", "apt", "passwd", "login",
          "kmod", "psmisc", "man-db", "debianutils", "cron", "anacron", "at", "gawk", "cpio", "xz-utils",
          "sysvinit-utils", "sane-utils", "libsane-common", "mtools", "dosfstools", "fdisk", "grub-common",
          "grub2-common", "kbd", "nano", "mutt", "texinfo", "install-info", "info", "parted", "vorbis-tools",
          "nfs-common", "nfs-kernel-server", "iptables", "wdiff", "psutils", "netpbm", "sysstat", "recutils",
          "eject", "usbutils", "rfkill", "acct", "inetutils-talkd", "bsdgames", "wodim", "thinkfan", "vlock",
          "x11-xserver-utils", "x11-apps", "sharutils", "rpm", "exif", "binkd", "abcde"]
MAN_DE = ["manpages-de", "manpages-de-dev"]

# (package, kind, glob patterns relative to the unpacked package root)
DOCS = {
    "de": [
        ("debian-reference-de", "html", ["usr/share/debian-reference/*.de.html"]),
        ("debian-faq-de", "html", ["usr/share/doc/debian/FAQ/de/*.html"]),
        ("developers-reference-de", "html", ["usr/share/developers-reference/de/*.html"]),
        ("maint-guide-de", "html", ["usr/share/doc/maint-guide-de/html/*.html"]),
        ("debian-edu-doc-de", "html", ["usr/share/doc/debian-edu-doc-de/debian-edu-bookworm-manual.html"]),
        ("gimp-help-de", "html", ["usr/share/gimp/2.0/help/de/**/*.html"]),
        ("libreoffice-help-de", "html", ["usr/share/libreoffice/help/de/text/**/*.html"]),
        ("kicad-doc-de", "html", ["usr/share/doc/kicad/help/de/*.html"]),
        ("udo-doc-de", "html", ["usr/share/doc/udo-doc-de/html/*.html"]),
        ("fortunes-de", "fortune", ["usr/share/games/fortunes/de/*"]),
    ],
    "en": [
        ("debian-reference-en", "html", ["usr/share/debian-reference/*.en.html"]),
        ("debian-faq", "html", ["usr/share/doc/debian/FAQ/*.html"]),
        ("developers-reference", "html", ["usr/share/developers-reference/*.html"]),
        ("maint-guide", "html", ["usr/share/doc/maint-guide/html/*.html"]),
        ("debian-edu-doc-en", "html", ["usr/share/doc/debian-edu-doc-en/debian-edu-bookworm-manual.html"]),
        ("gimp-help-en", "html", ["usr/share/gimp/2.0/help/en/**/*.html"]),
        ("libreoffice-help-en-us", "html", ["usr/share/libreoffice/help/en-US/text/**/*.html"]),
        ("kicad-doc-en", "html", ["usr/share/doc/kicad/help/en/*.html"]),
        ("udo-doc-en", "html", ["usr/share/doc/udo-doc-en/html/*.html"]),
        ("fortunes", "fortune", ["usr/share/games/fortunes/*"]),
    ],
}
SKIP_FILES = re.compile(r"(?:^|/)(?:search|genindex|py-modindex)\.html$|\.(?:dat|u8)$")
DICTS = ["dict-freedict-eng-deu", "dict-freedict-deu-eng"]

# ---------------------------------------------------------------------------------------------- tokens
WORD_RE = re.compile(r"[0-9a-zß-öø-ÿ]+(?:['\-][0-9a-zß-öø-ÿ]+)*")
LETTER_RE = re.compile(r"[a-zß-öø-ÿ]")
NORM = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2212": "-", "\u00ad": None, "\u2019": "'",
                      "\u2018": "'", "`": "'", "\u00a0": " ", "\u202f": " "})
# URLs, e-mail addresses, absolute/home paths, command-line options.
JUNK_RE = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\S+@\S+\.\S+|(?<![\w.\-])[~.]*/[^\s,;)]*"
                     r"|(?<![\w\-])--?[a-z0-9][\w\-=]*", re.IGNORECASE)
STOP = {"de": {"der", "die", "das", "und", "ist", "nicht", "eine", "einen", "einem", "einer", "eines",
               "des", "dem", "den", "mit", "für", "von", "zu", "auf", "wird", "werden", "sind", "sich",
               "auch", "wenn", "oder", "wie", "bei", "nach", "kann", "können", "nur", "diese", "dieser",
               "dieses", "aus", "wurde", "über", "durch", "sie", "es", "ein", "zum", "zur", "vom", "muss",
               "sein", "dass"},
        "en": {"the", "and", "is", "are", "not", "of", "to", "with", "for", "from", "that", "this",
               "which", "be", "by", "it", "can", "if", "or", "as", "when", "you", "your", "were", "been",
               "has", "have", "these", "those", "than", "such", "into", "should", "must", "may", "would",
               "there", "its"}}


def tokenize(text):
    """German-aware tokenizer, used for both languages so the corpora are tokenized alike."""
    text = unicodedata.normalize("NFC", text).translate(NORM)
    text = JUNK_RE.sub(" ", text).lower()
    return [t for t in WORD_RE.findall(text) if LETTER_RE.search(t)]


def keep_line(toks, lang):
    if len(toks) < MIN_LINE_TOKENS:
        return False
    own = sum(t in STOP[lang] for t in toks)
    other = sum(t in STOP["en" if lang == "de" else "de"] for t in toks)
    return own >= other


# ---------------------------------------------------------------------------------------------- Debian
def fetch(packages, work):
    """apt-get download + dpkg-deb -x each package into work/<package>/; returns {package: version}."""
    debs = os.path.join(work, "debs")
    os.makedirs(debs, exist_ok=True)
    subprocess.run(["apt-get", "download", *packages], cwd=debs, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    versions = {}
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        fields = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version"], check=True,
                                stdout=subprocess.PIPE, text=True).stdout
        meta = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
        versions[meta["Package"]] = meta["Version"]
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(work, meta["Package"])], check=True)
        os.remove(deb)
    missing = sorted(set(packages) - set(versions))
    if missing:
        raise RuntimeError(f"apt-get download did not deliver {missing}")
    return versions


def files(root, patterns):
    out = set()
    for pat in patterns:
        for p in glob.glob(os.path.join(root, pat), recursive=True):
            if os.path.isfile(p) and not os.path.islink(p) and not SKIP_FILES.search(p):
                out.add(p)
    return sorted(out)


# ---------------------------------------------------------------------------------------------- man
MAN_DROP = {"ÜBERSICHT", "SYNOPSIS", "ÜBERSETZUNG", "SIEHE AUCH", "SEE ALSO", "KOLOPHON", "COLOPHON",
            "AUTOR", "AUTOREN", "AUTHOR", "AUTHORS", "COPYRIGHT", "LIZENZ", "LICENSE"}
MAN_GROFF = ["groff", "-Kutf8", "-t", "-Tutf8", "-mandoc", "-rLL=3000n", "-rHY=0", "-rcR=1", "-P-cbou",
             "-w", "none"]


def man_pages(root, lang):
    """{(section dir, file name): path} of the real (not .so or symlinked) pages under root."""
    sub = "usr/share/man/de/man*" if lang == "de" else "usr/share/man/man*"
    out = {}
    for d in sorted(glob.glob(os.path.join(root, sub))):
        for p in sorted(glob.glob(os.path.join(d, "*"))):
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            name = os.path.basename(p).removesuffix(".gz")
            out.setdefault((os.path.basename(d), name), p)
    return out


def _read(path):
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def render_man(path):
    src = _read(path)
    if re.match(r"\s*\.so\s", src) and src.count("\n") <= 2:
        return []
    res = subprocess.run(MAN_GROFF, input=src.encode("utf-8"), stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, check=False)
    lines = [ln for ln in res.stdout.decode("utf-8", errors="replace").splitlines() if ln.strip()]
    out, drop = [], False
    for ln in lines[1:-1]:  # header and footer
        if not ln[0].isspace():
            drop = ln.strip().upper() in MAN_DROP
            continue
        if not drop:
            out.append(ln.strip())
    return out


# ---------------------------------------------------------------------------------------------- HTML
BLOCK = {"p", "div", "br", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table",
         "ul", "ol", "dl", "blockquote", "section", "article", "caption", "figcaption", "hr", "title", "body",
         "tbody", "thead", "center", "form", "fieldset", "legend", "option", "address"}
VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "param", "source",
        "track", "wbr"}
SKIP_TAGS = {"script", "style", "head", "pre", "nav", "header", "footer", "aside", "noscript", "svg",
             "button", "select", "textarea"}
SKIP_CLASS = {"navheader", "navfooter", "reportbug", "toc", "sphinxsidebar", "related", "footer",
              "headerlink", "highlight", "breadcrumb", "breadcrumbs", "list-of-figures", "list-of-tables",
              "list-of-examples", "programlisting", "screen", "synopsis", "cmdsynopsis", "literallayout", "bascode",
              "pycode"}
CODE_CLASS = ("language-", "highlight-")  # class prefixes of code blocks (LibreOffice, Sphinx)


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines, self.buf, self.skip, self.depth = [], [], None, 0

    def _flush(self):
        if self.buf:
            self.lines.append(" ".join("".join(self.buf).split()))
            self.buf = []

    def handle_starttag(self, tag, attrs):
        if self.skip == "head" and tag == "body":
            self.skip = None
        if self.skip is not None:
            self.depth += tag == self.skip
            return
        if tag not in VOID:
            a = dict(attrs)
            cls = (a.get("class") or "").split()
            if tag in SKIP_TAGS or "hidden" in a or SKIP_CLASS.intersection(cls) \
                    or any(c.startswith(CODE_CLASS) for c in cls):
                self.skip, self.depth = tag, 1
                self._flush()
                return
        if tag in BLOCK:
            self._flush()

    def handle_endtag(self, tag):
        if self.skip is not None:
            if tag == self.skip:
                self.depth -= 1
                if self.depth == 0:
                    self.skip = None
            return
        if tag in BLOCK:
            self._flush()

    def handle_data(self, data):
        if self.skip is None:
            self.buf.append(data)


def html_text(path):
    p = _Text()
    p.feed(_read(path))
    p.close()
    p._flush()
    return p.lines


def fortune_text(path):
    out = []
    for cookie in re.split(r"(?m)^%\s*$", _read(path)):
        body = [ln for ln in cookie.splitlines() if not re.match(r"\s*(?:--|\u2014)\s*\S", ln)]
        out.append(" ".join(" ".join(body).split()))
    return out


# ---------------------------------------------------------------------------------------------- corpora
def _pmap(fn, items, jobs):
    if jobs <= 1:
        return [fn(x) for x in items]
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        return list(ex.map(fn, items))


def build_corpora(out, seed=SEED, jobs=2, log=print):
    work_parent = out if os.access(out, os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=work_parent, prefix="work-") as work:
        docs = sorted({p for lang in DOCS for p, _, _ in DOCS[lang]})
        t = time.time()
        versions = fetch(sorted(set(MAN_DE + MAN_EN + docs)), work)
        log(f"downloaded and unpacked {len(versions)} packages in {time.time() - t:.0f}s")
        # German pages: manpages-de first, then those the English packages ship themselves.
        de_pages, en_pages = {}, {}
        for pkg in MAN_DE + MAN_EN:
            for key, path in man_pages(os.path.join(work, pkg), "de").items():
                de_pages.setdefault(key, path)
        for pkg in MAN_EN:
            for key, path in man_pages(os.path.join(work, pkg), "en").items():
                if key in de_pages:
                    en_pages.setdefault(key, path)
        de_pages = {k: v for k, v in de_pages.items() if k in en_pages}
        log(f"man pages: {len(de_pages)} German/English pairs")
        raw = {}
        for lang, pages in (("de", de_pages), ("en", en_pages)):
            t = time.time()
            texts = _pmap(render_man, [pages[k] for k in sorted(pages)], jobs)
            raw[lang] = [("man", ln) for page in texts for ln in page]
            log(f"{lang}: rendered {len(pages)} man pages in {time.time() - t:.0f}s")
            for pkg, kind, patterns in DOCS[lang]:
                fn = html_text if kind == "html" else fortune_text
                paths = files(os.path.join(work, pkg), patterns)
                lines = [ln for p in paths for ln in fn(p)]
                raw[lang] += [(pkg, ln) for ln in lines]
                log(f"{lang}: {pkg}: {len(paths)} files, {len(lines)} lines")
    result = {}
    for lang in ("de", "en"):
        seen, lines, per_source = set(), [], collections.Counter()
        for source, text in raw[lang]:
            toks = tokenize(text)
            if not keep_line(toks, lang):
                continue
            line = " ".join(toks)
            if line in seen:
                continue
            seen.add(line)
            lines.append(line)
            per_source[source] += len(toks)
        random.Random(seed).shuffle(lines)
        path = os.path.join(out, lang + ".txt")
        with open(path + ".part", "w", encoding="utf-8") as f:
            f.writelines(ln + "\n" for ln in lines)
        os.replace(path + ".part", path)
        result[lang] = per_source
        log(f"{lang}.txt tokens by source: " + ", ".join(f"{s} {n:,}" for s, n in per_source.most_common()))
    return versions, result


# ---------------------------------------------------------------------------------------------- lexicon
EN_WORD = re.compile(r"[a-z]+")
DE_WORD = re.compile(r"[a-zäöüß]+")
ANNOT = re.compile(r"<[^<>]*>|\[[^\[\]]*\]|\([^()]*\)|\{[^{}]*\}")
PRON = re.compile(r"\s/[^/\n]*/")


def _num(s):
    return sum(B64[c] * 64 ** k for k, c in enumerate(reversed(s)))


def _dict_entries(root, name):
    base = os.path.join(root, "usr/share/dictd", name)
    with gzip.open(base + ".dict.dz", "rb") as f:
        data = f.read()
    spans = set()
    with open(base + ".index", encoding="utf-8") as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 3 and not p[0].startswith("00-") and not p[0].startswith("00database"):
                spans.add((_num(p[1]), _num(p[2])))
    for off, ln in sorted(spans):
        yield data[off:off + ln].decode("utf-8", errors="replace")


def _words(text):
    text = ANNOT.sub(" ", text)
    return [" ".join(w.split()).lower() for w in re.split(r"[,;]", text)]


def dict_pairs(root, name):
    """(headword, translation) single-word pairs of a FreeDict dictd dictionary."""
    pairs = set()
    for entry in _dict_entries(root, name):
        lines = entry.split("\n")
        heads = _words(PRON.sub(" ", lines[0]))
        trans = []
        for ln in lines[1:]:
            if not ln.strip():
                break
            if ln.startswith("   ") or re.match(r"\s*(?:see|Synonyms?|Note):", ln):
                continue
            trans += _words(ln)
        for h in heads:
            for t in trans:
                if h and t:
                    pairs.add((h, t))
    return pairs


def counts(path):
    c = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            c.update(line.split())
    return c


def build_lexicon(out, en_counts, de_counts, log=print):
    with tempfile.TemporaryDirectory(dir=out, prefix="work-") as work:
        versions = fetch(DICTS, work)
        en_de = dict_pairs(os.path.join(work, "dict-freedict-eng-deu"), "freedict-eng-deu")
        de_en = dict_pairs(os.path.join(work, "dict-freedict-deu-eng"), "freedict-deu-eng")
    raw = {(e, d) for e, d in en_de} | {(e, d) for d, e in de_en}
    single = {(e, d) for e, d in raw if EN_WORD.fullmatch(e) and DE_WORD.fullmatch(d)}
    kept = sorted((e, d) for e, d in single if en_counts[e] >= MIN_COUNT and de_counts[d] >= MIN_COUNT)
    log(f"FreeDict: {len(en_de):,} eng-deu + {len(de_en):,} deu-eng raw pairs, {len(single):,} single-word "
        f"alphabetic, {len(kept):,} with both words >= {MIN_COUNT} times in the corpora")
    write_tsv(os.path.join(out, "lexicon.tsv"), kept)
    return versions


def write_tsv(path, pairs):
    with open(path + ".part", "w", encoding="utf-8") as f:
        f.writelines(f"{e}\t{d}\n" for e, d in pairs)
    os.replace(path + ".part", path)


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f if line.strip()]


def split_lexicon(out, en_counts, seed=SEED):
    pairs = read_tsv(os.path.join(out, "lexicon.tsv"))
    sources = sorted({e for e, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_test = TEST_WORDS if len(sources) >= 5 * TEST_WORDS else len(sources) // 5
    test_words = set(sources[:n_test])
    train = [p for p in pairs if p[0] not in test_words]
    write_tsv(os.path.join(out, "test.tsv"), [p for p in pairs if p[0] in test_words])
    write_tsv(os.path.join(out, "train.tsv"), train)
    by_freq = sorted({e for e, _ in train}, key=lambda w: (-en_counts[w], w))
    for n in SEED_SIZES:
        top = set(by_freq[:n])
        write_tsv(os.path.join(out, f"train-{n}.tsv"), [p for p in train if p[0] in top])


# ---------------------------------------------------------------------------------------------- main
OUTPUTS = {"corpora": ["de.txt", "en.txt"], "lexicon": ["lexicon.tsv"],
           "split": ["train.tsv", "test.tsv"] + [f"train-{n}.tsv" for n in SEED_SIZES]}


def _versions(out, new=None):
    path = os.path.join(out, "packages.tsv")
    old = dict(read_tsv(path)) if os.path.exists(path) else {}
    if new:
        old.update(new)
        write_tsv(path, sorted(old.items()))
    return old


def summary(out):
    info = {}
    for lang in ("de", "en"):
        info[lang] = stats(os.path.join(out, lang + ".txt"))
    for name in ["lexicon"] + OUTPUTS["split"]:
        name = name.removesuffix(".tsv")
        pairs = read_tsv(os.path.join(out, name + ".tsv"))
        info[name] = {"pairs": len(pairs), "en": len({e for e, _ in pairs}), "de": len({d for _, d in pairs}),
                      "identical": sum(e == d for e, d in pairs)}
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.bilingual", description=__doc__.split("\n")[0])
    ap.add_argument("--cache", default=OUT, help="output directory (default %(default)s)")
    ap.add_argument("--force", action="store_true", help="rebuild every step even if its outputs exist")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel groff processes")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.cache)
    os.makedirs(out, exist_ok=True)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)
    have = lambda step: all(os.path.exists(os.path.join(out, f)) for f in OUTPUTS[step])
    t0 = time.time()
    rebuilt = False
    if args.force or not have("corpora"):
        versions, _ = build_corpora(out, seed=args.seed, jobs=args.jobs, log=log)
        _versions(out, versions)
        rebuilt = True
    else:
        log("corpora: cached")
    en_counts, de_counts = counts(os.path.join(out, "en.txt")), counts(os.path.join(out, "de.txt"))
    if args.force or rebuilt or not have("lexicon"):
        _versions(out, build_lexicon(out, en_counts, de_counts, log=log))
        rebuilt = True
    else:
        log("lexicon: cached")
    if args.force or rebuilt or not have("split"):
        split_lexicon(out, en_counts, seed=args.seed)
    else:
        log("split: cached")
    info = summary(out)
    versions = _versions(out)
    print(f"bilingual benchmark in {out} ({time.time() - t0:.0f}s)")
    print(f"packages: {len(versions)} (see packages.tsv); "
          + ", ".join(f"{p} {versions[p]}" for p in MAN_DE + DICTS if p in versions))
    for lang in ("de", "en"):
        s = info[lang]
        print(f"{lang}.txt: {s['tokens']:,} tokens, {s['types']:,} types, {s['types_min5']:,} with count >= 5")
    for name in ["lexicon", "test", "train"] + [f"train-{n}" for n in SEED_SIZES]:
        s = info[name]
        print(f"{name + '.tsv':15s} {s['pairs']:7,} pairs, {s['en']:6,} English / {s['de']:6,} German words, "
              f"{s['identical']:,} identical pairs")
    return info


if __name__ == "__main__":
    main()
