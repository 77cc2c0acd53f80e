"""Early stopping, best-model folders and resume bookkeeping (no TensorFlow needed)."""

import json
import math
import os

import pytest

from common import Checkpoints
from common.Config import ModelConfig


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
    Checkpoints.keep_best(folder, os.path.join(folder, "model-5"), ModelConfig().replace(num_layers=4))
    best = Checkpoints.keep_best(folder, os.path.join(folder, "model-9"), ModelConfig().replace(num_layers=3))
    assert best == os.path.join(folder, "best", "model-9")
    assert sorted(os.listdir(tmp_path / "best")) == [
        "checkpoint",
        "model-9.data-00000-of-00001",
        "model-9.index",
        "model_config.json",
    ]
    with open(tmp_path / "best" / Checkpoints.MODEL_CONFIG_FILE) as handle:
        assert json.load(handle) == ModelConfig().replace(num_layers=3).to_dict()
    assert not os.path.exists(tmp_path / "best.tmp") and not os.path.exists(tmp_path / "best.old")


def test_resolve_resume_from_phase_folder_best_folder_and_sacred_run(tmp_path):
    phase = tmp_path / "ckpt" / "exp42_semisup"
    phase.mkdir(parents=True)
    Checkpoints.write_model_config(str(phase), ModelConfig())
    assert Checkpoints.resolve_resume(str(phase)) == ("exp42", str(tmp_path / "ckpt"))
    (phase / "best").mkdir()
    assert Checkpoints.resolve_resume(str(phase / "best")) == ("exp42", str(tmp_path / "ckpt"))
    run = tmp_path / "runs" / "3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"experiment_id": "exp42", "model_config": {"model_base_dir": "ckpt"}}))
    assert Checkpoints.resolve_resume(str(run)) == ("exp42", "ckpt")


def test_resolve_resume_rejects_missing_and_unrelated_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Checkpoints.resolve_resume(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="neither a checkpoint folder"):
        Checkpoints.resolve_resume(str(tmp_path))


@pytest.mark.parametrize(
    "content, named", [(json.dumps({"seed": 1}), "has no 'experiment_id'"), ("\x00\xff not json", "cannot be read")]
)
def test_a_sacred_run_folder_without_the_experiment_id_says_what_to_pass_instead(tmp_path, content, named):
    run = tmp_path / "runs" / "7"
    run.mkdir(parents=True)
    (run / "config.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match=f"{named}.*resume=checkpoints/<experiment_id>_sup"):
        Checkpoints.resolve_resume(str(run))


def validated_state(losses, best_step):
    state = Checkpoints.PhaseState(phase="sup")
    for epoch, loss in enumerate(losses, start=1):
        state.record_validation(loss, step=10 * epoch, seconds=1, patience=5)
    state.best_checkpoint = f"/x/best/model-{best_step}"
    return state


def test_rewinding_forgets_later_epochs_and_replays_early_stopping():
    state = validated_state([1.0, 0.8, 0.9, 0.7], best_step=20)
    state.best_checkpoint = "/x/best/model-20"
    rewound = state.rewound(30, best_step=20)  # the best (epoch 2) was before the checkpoint
    assert [entry["step"] for entry in rewound.history] == [10, 20, 30]
    assert (rewound.epoch, rewound.epoch_start_step, rewound.worse_epochs) == (3, 30, 1)
    assert rewound.best_loss == 0.8 and rewound.best_checkpoint == "/x/best/model-20"
    assert not rewound.finished and rewound.test_loss is None


def test_rewinding_past_the_kept_best_model_claims_no_best():
    state = validated_state([1.0, 0.8, 0.5], best_step=30)
    rewound = state.rewound(20, best_step=30)  # best/ holds the model of a forgotten epoch
    assert rewound.epoch == 2 and rewound.best_checkpoint is None and math.isinf(rewound.best_loss)
    assert Checkpoints.PhaseState(phase="sup").rewound(0).epoch == 0


TABLE_MAGIC = b"x" * 8 + (0xDB4775248B80FB57).to_bytes(8, "little")  # the tail of a valid .index file


def touch_checkpoint(folder, step, index=TABLE_MAGIC):
    (folder / f"model-{step}.index").write_bytes(index)
    (folder / f"model-{step}.data-00000-of-00001").write_bytes(b"data")


def test_checkpoint_candidates_come_from_the_state_file_and_the_disk_newest_first(tmp_path):
    for step in (3, 12):
        touch_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "/elsewhere/model-20"\n'
        'all_model_checkpoint_paths: "/elsewhere/model-12"\n'
        'all_model_checkpoint_paths: "/elsewhere/model-20"\n'
    )
    assert Checkpoints.checkpoint_candidates(str(tmp_path)) == [
        str(tmp_path / "model-20"),
        str(tmp_path / "model-12"),
        str(tmp_path / "model-3"),
    ]
    assert Checkpoints.checkpoint_step(str(tmp_path / "model-12")) == 12
    assert Checkpoints.checkpoint_step(str(tmp_path / "best")) is None


def test_damaged_file_names_the_part_at_fault(tmp_path):
    touch_checkpoint(tmp_path, 1)
    assert Checkpoints.damaged_file(str(tmp_path / "model-1")).endswith(
        "model-1.data-00000-of-00001 is truncated or damaged"
    )
    touch_checkpoint(tmp_path, 2, index=b"truncated")
    assert Checkpoints.damaged_file(str(tmp_path / "model-2")).endswith("model-2.index is truncated or damaged")
    (tmp_path / "model-1.data-00000-of-00001").unlink()
    assert Checkpoints.damaged_file(str(tmp_path / "model-1")).endswith("model-1.data-00000-of-00001 is missing")
    assert Checkpoints.damaged_file(str(tmp_path / "model-9")).endswith("model-9.index is missing")


def test_experiment_ids_are_unique_and_sort_by_start_time():
    ids = [Checkpoints.new_experiment_id() for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(len(value) == len("20261201-211500-a1b2c3") and value[8] == "-" for value in ids)


def test_a_new_run_may_not_reuse_another_runs_folders(tmp_path):
    base, logs = str(tmp_path / "checkpoints"), str(tmp_path / "logs")
    Checkpoints.refuse_to_reuse(base, logs, "exp")  # nothing there yet
    phase = tmp_path / "checkpoints" / "exp_sup"
    phase.mkdir(parents=True)
    Checkpoints.write_model_config(str(phase), ModelConfig())  # a run that failed before training: no progress
    Checkpoints.refuse_to_reuse(base, logs, "exp")
    Checkpoints.PhaseState(phase="sup").save(str(phase))
    with pytest.raises(FileExistsError, match=r"exp_sup already holds another run.*resume="):
        Checkpoints.refuse_to_reuse(base, logs, "exp")
    events = tmp_path / "logs" / "other_semisup"
    events.mkdir(parents=True)
    (events / "events.out.tfevents.1").write_bytes(b"")
    with pytest.raises(FileExistsError, match="other_semisup already holds"):
        Checkpoints.refuse_to_reuse(base, logs, "other")
