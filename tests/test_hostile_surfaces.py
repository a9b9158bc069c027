"""Hostile and careless input on the newer surfaces (issue 28): nothing lost, every run stoppable, every value
read from a file checked, one-line errors."""
import os
import shutil

import numpy as np
import pytest

import fastemb
from conftest import assert_one_line_error, run_cli
from test_training_core import planted_corpus


# ------------------------------------------------------------------------------------------ data loss
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """`train -o out.h5` interrupted after 2 of 3 epochs: out.h5.ckpt (epoch 1) kept, no model."""
    d = tmp_path_factory.mktemp("resume")
    planted_corpus(d / "p.txt", sentences=400)
    out = d / "out.h5"

    def stop(run):
        if run.epoch == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fastemb.train(str(d / "p.txt"), dim=8, epochs=3, threads=1, output=str(out), checkpoint_every="1",
                      callbacks=[stop])
    assert not out.exists() and os.path.exists(f"{out}.ckpt")
    return d, out


def test_resume_keeps_a_copy_of_the_checkpoint(interrupted, tmp_path):
    d, out = interrupted
    keep = tmp_path / "keep.ckpt"
    shutil.copy(f"{out}.ckpt", keep)
    saved = keep.read_bytes()
    target = tmp_path / "out.h5"
    rc, _, err = run_cli("train", "--resume", keep, "-o", target, "--quiet")
    assert rc == 0, err
    assert keep.read_bytes() == saved            # the user's copy: never removed nor written over
    assert fastemb.load(target).attrs["epochs_trained"] == 3
    assert os.path.exists(f"{out}.ckpt")         # made for out.h5, not for this output


def test_resume_removes_its_own_checkpoint_only_for_its_output(interrupted, tmp_path):
    d, out = interrupted
    work = tmp_path / "w"
    work.mkdir()
    own_out = work / "out.h5"
    own_ck = work / "out.h5.ckpt"
    # the run's own checkpoint, at its recorded place, for another output: kept
    rc, _, err = run_cli("train", "--resume", f"{out}.ckpt", "-o", own_out, "--quiet")
    assert rc == 0, err
    assert os.path.exists(f"{out}.ckpt") and not own_ck.exists()
    # ... and for its own output: superseded by the model, removed
    backup = tmp_path / "backup.ckpt"
    shutil.copy(f"{out}.ckpt", backup)
    try:
        rc, _, err = run_cli("train", "--resume", f"{out}.ckpt", "-o", out, "--quiet")
        assert rc == 0, err
        assert out.exists() and not os.path.exists(f"{out}.ckpt")
    finally:
        if out.exists():
            out.unlink()
        shutil.copy(backup, f"{out}.ckpt")


def test_export_side_files_obey_force(tmp_path):
    planted_corpus(tmp_path / "p.txt", sentences=200)
    model = tmp_path / "m.h5"
    fastemb.train(str(tmp_path / "p.txt"), dim=4, epochs=1, output=str(model))
    out = tmp_path / "v.txt"
    side = tmp_path / "v.txt.vocab"
    side.write_text("mine\n")
    rc, _, err = run_cli("export", model, "-o", out, "--format", "word2vec")
    assert_one_line_error(rc, err, contains="v.txt.vocab")
    assert side.read_text() == "mine\n" and not out.exists()   # refused before anything was written
    rc, _, err = run_cli("export", model, "-o", out, "--format", "word2vec", "--force", "--quiet")
    assert rc == 0, err
    assert side.read_text() != "mine\n" and out.exists()
