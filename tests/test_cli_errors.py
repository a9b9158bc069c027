"""Bad input: one line on stderr, exit code 1 (2 for click usage errors), no traceback, no output file."""
import os

import pytest

from conftest import assert_one_line_error, run_cli


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out" / "result.h5"


def outputs(path):
    return sorted(os.listdir(path.parent)) if path.parent.exists() else []


@pytest.mark.parametrize("command", ["vocab", "cooc"])
def test_missing_path(tmp_path, command):
    o = tmp_path / "o"
    rc, _, err = run_cli(command, tmp_path / "nope.txt", "-o", o)
    assert_one_line_error(rc, err, contains="no such file")
    assert not o.exists()


def test_directory_without_text(tmp_path):
    (tmp_path / "empty").mkdir()
    rc, _, err = run_cli("cooc", tmp_path / "empty", "-o", tmp_path / "o.h5")
    assert_one_line_error(rc, err, contains="no text files")
    assert not (tmp_path / "o.h5").exists()


def test_empty_corpus_and_all_under_min_count(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    rc, _, err = run_cli("cooc", empty, "-o", tmp_path / "o.h5")
    assert_one_line_error(rc, err, contains="empty")
    rare = tmp_path / "rare.txt"
    rare.write_text("every word here is rare\n")
    rc, _, err = run_cli("cooc", rare, "-o", tmp_path / "o.h5")
    assert_one_line_error(rc, err, contains="--min-count")
    assert sorted(os.listdir(tmp_path)) == ["empty.txt", "rare.txt"]


@pytest.mark.parametrize("args,contains", [(["--window", "0"], "--window"), (["--window", "-3"], "--window"),
                                           (["--memory", "lots"], "--memory"), (["--threads", "0"], "--threads"),
                                           (["--min-count", "0"], "--min-count")])
def test_bad_numbers(kjv_small, tmp_path, args, contains):
    rc, _, err = run_cli("cooc", kjv_small, "-o", tmp_path / "o.h5", *args)
    assert_one_line_error(rc, err, contains=contains)
    assert not (tmp_path / "o.h5").exists()


def test_unwritable_output(kjv_small, tmp_path):
    rc, _, err = run_cli("cooc", kjv_small, "-o", tmp_path / "missing-dir" / "o.h5")
    assert_one_line_error(rc, err, contains="does not exist")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        rc, _, err = run_cli("vocab", kjv_small, "-o", ro / "v.tsv")
        assert_one_line_error(rc, err, contains="not writable")
    finally:
        ro.chmod(0o700)


def test_existing_output_needs_force(kjv_small, tmp_path):
    o = tmp_path / "v.tsv"
    o.write_text("keep me")
    rc, _, err = run_cli("vocab", kjv_small, "-o", o)
    assert_one_line_error(rc, err, contains="--force")
    assert o.read_text() == "keep me"
    rc, _, err = run_cli("vocab", kjv_small, "-o", o, "--force", "--quiet")
    assert rc == 0 and o.read_text().startswith(",\t")


def test_usage_error_exit_2(tmp_path):
    rc, _, err = run_cli("cooc", "--weighting", "bogus", "x", "-o", tmp_path / "o")
    assert rc == 2 and "Traceback" not in err


def test_info_on_non_fastemb_file(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("not hdf5")
    rc, _, err = run_cli("info", p)
    assert_one_line_error(rc, err, contains="not an HDF5 file")


def test_corrupt_gzip(tmp_path, kjv_small):
    import gzip
    data = gzip.compress(open(kjv_small, "rb").read())
    p = tmp_path / "c.txt.gz"
    p.write_bytes(data[: len(data) // 2])
    rc, _, err = run_cli("vocab", p, "-o", tmp_path / "v.tsv")
    assert_one_line_error(rc, err, contains="corrupt or truncated")
    assert not (tmp_path / "v.tsv").exists()


@pytest.mark.slow
def test_json_summaries(kjv_small, tmp_path):
    import json
    rc, out, err = run_cli("vocab", kjv_small, "-o", tmp_path / "v.tsv", "--json", "--quiet")
    assert rc == 0, err
    assert json.loads(out)["words"] == len((tmp_path / "v.tsv").read_text().splitlines())
    rc, out, err = run_cli("cooc", kjv_small, "-o", tmp_path / "c.h5", "--json", "--quiet", "--window", "2")
    assert rc == 0, err
    assert json.loads(out)["nnz"] > 0
    rc, out, err = run_cli("train", kjv_small, "-o", tmp_path / "t.h5", "--json", "--quiet", "--epochs", "2",
                           "--dim", "8")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["algo"] == "sgns" and len(summary["loss"]) == 2
