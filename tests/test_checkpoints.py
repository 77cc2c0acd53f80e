"""Early stopping, best-model folders and resume bookkeeping (no TensorFlow needed)."""

import json
import math
import os

import pytest

import Checkpoints


def test_early_stopping_with_patience_one_stops_after_first_worse_epoch():
    state = Checkpoints.PhaseState(phase="sup")
    assert state.record_validation(1.0, step=10, seconds=1, patience=1)
    assert state.record_validation(0.5, step=20, seconds=1, patience=1)
    assert not state.finished
    assert not state.record_validation(0.7, step=30, seconds=1, patience=1)
    assert state.finished and state.best_loss == 0.5 and state.epoch == 3
    assert "did not improve" in state.stop_reason


def test_patience_counts_consecutive_worse_epochs():
    state = Checkpoints.PhaseState(phase="sup")
    for loss in (1.0, 1.1, 0.9, 1.2):
        state.record_validation(loss, step=0, seconds=0, patience=2)
    assert not state.finished and state.worse_epochs == 1
    state.record_validation(1.3, step=0, seconds=0, patience=2)
    assert state.finished and state.best_loss == 0.9


def test_state_round_trip_keeps_infinite_best_loss(tmp_path):
    state = Checkpoints.PhaseState(phase="semisup", epoch_start_step=7)
    state.save(str(tmp_path))
    with open(tmp_path / Checkpoints.STATE_FILE) as handle:
        assert json.load(handle)["best_loss"] is None
    loaded = Checkpoints.PhaseState.load(str(tmp_path), "semisup")
    assert loaded == state and math.isinf(loaded.best_loss)


def test_keep_best_replaces_previous_best_and_writes_a_complete_model_folder(tmp_path):
    folder = str(tmp_path)
    for step in (5, 9):
        for suffix in (".index", ".data-00000-of-00001"):
            (tmp_path / f"model-{step}{suffix}").write_text(str(step))
    Checkpoints.keep_best(folder, os.path.join(folder, "model-5"), {"num_layers": 4})
    best = Checkpoints.keep_best(folder, os.path.join(folder, "model-9"), {"num_layers": 3})
    assert best == os.path.join(folder, "best", "model-9")
    assert sorted(os.listdir(tmp_path / "best")) == [
        "checkpoint", "model-9.data-00000-of-00001", "model-9.index", "model_config.json"]
    with open(tmp_path / "best" / Checkpoints.MODEL_CONFIG_FILE) as handle:
        assert json.load(handle) == {"num_layers": 3}
    assert not os.path.exists(tmp_path / "best.tmp") and not os.path.exists(tmp_path / "best.old")


def test_resolve_resume_from_phase_folder_best_folder_and_sacred_run(tmp_path):
    phase = tmp_path / "ckpt" / "exp42_semisup"
    phase.mkdir(parents=True)
    Checkpoints.write_model_config(str(phase), {})
    assert Checkpoints.resolve_resume(str(phase)) == ("exp42", str(tmp_path / "ckpt"))
    (phase / "best").mkdir()
    assert Checkpoints.resolve_resume(str(phase / "best")) == ("exp42", str(tmp_path / "ckpt"))
    run = tmp_path / "runs" / "3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"experiment_id": "exp42",
                                                 "model_config": {"model_base_dir": "ckpt"}}))
    assert Checkpoints.resolve_resume(str(run)) == ("exp42", "ckpt")


def test_resolve_resume_rejects_missing_and_unrelated_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Checkpoints.resolve_resume(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="neither a checkpoint folder"):
        Checkpoints.resolve_resume(str(tmp_path))
