"""Training.py's ``bss_eval`` setting: passed to the evaluation, checked before any work, and the
gain lines' metric when v3 is off."""

import contextlib
import csv
import glob
import io
import logging
import os

import pytest

import Training
from evaluation import Comparison

TINY_DEMO = {
    "use_demo": True,
    "eval_workers": 1,
    "partition_config": {"supervised_valid_songs": 1},
    "demo_database": {
        "song_seconds": 4,
        "ikala_clip_seconds": 4,
        "dsd_songs_per_split": 2,
        "medleydb_songs": 3,
        "ccmixter_songs": 3,
        "ikala_clips": 3,
    },
}


def run(command, tmp_path, **updates):
    """``Training.ex.run(command)`` with every file under ``tmp_path``; returns its printed output."""
    config = {
        **TINY_DEMO,
        "cache_dir": str(tmp_path / "cache"),
        "dataset_pkl": str(tmp_path / "dataset.pkl"),
        "results_dir": str(tmp_path / "results"),
        **updates,
    }
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            Training.ex.run(command, config_updates=config)
    finally:
        logging.getLogger().setLevel(logging.INFO)  # sacred sets the root logger's level
    return output.getvalue()


@pytest.mark.parametrize("command", ["main", "evaluate"])
def test_a_bad_bss_eval_setting_is_a_usage_error_before_any_training_or_evaluation(tmp_path, command):
    with pytest.raises(Training.UsageError, match=r"bss_eval=\['v3', 'v5'\]: use a list of 'v3'"):
        run(
            command,
            tmp_path,
            bss_eval=["v3", "v5"],
            model_path=str(tmp_path / "model"),
            model_config={"model_base_dir": str(tmp_path / "checkpoints"), "log_dir": str(tmp_path / "logs")},
        )
    assert not (tmp_path / "cache").exists() and not (tmp_path / "checkpoints").exists()


def test_evaluate_command_with_v4_only_writes_v4_columns_and_museval_json(tmp_path, tiny_model):
    printed = run("evaluate", tmp_path, model_path=tiny_model[0], partition="test", bss_eval=["v4"])

    (out_dir,) = glob.glob(str(tmp_path / "results" / "evaluate_*"))
    with open(os.path.join(out_dir, "per_song.csv"), newline="") as handle:
        header = next(csv.reader(handle))
    assert "SDR_v4" in header and "frames_v4" in header and "SDR" not in header and "NSDR" not in header
    assert "SDR_v4" in printed and "NSDR" not in printed and "undefined, left out of the medians" in printed
    model = os.path.basename(tiny_model[0])
    assert len(glob.glob(os.path.join(out_dir, "museval", model, "test", "*", "*.json"))) >= 2  # one per song


def test_the_gain_lines_use_sdr_v4_when_v3_is_off():
    def rows(offset):
        return [
            {"database": "D", "song": f"s{index}", "source": source, "SDR_v4": index + offset}
            for index in range(4)
            for source in ("accompaniment", "voice")
        ]

    assert Comparison.gain_metric(("v3", "v4")) == "SDR" and Comparison.gain_metric(("v4",)) == "SDR_v4"
    metric = Comparison.gain_metric(("v4",))
    gains = Comparison.gain_table([rows(0.0)], [rows(1.5)], metric)
    lines = Comparison.format_gain_lines(gains, metric)
    assert lines.startswith("SDR_v4 gain of the semi-supervised over the supervised model")
    assert "voice: SDR_v4 +1.50 dB" in lines


def test_evaluate_names_an_unwritable_results_dir_before_the_work_and_keeps_the_table_on_a_full_disk(
    tmp_path, tiny_model, monkeypatch, caplog
):
    import errno

    import Evaluate

    from tiny_model import fake_row

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated although results_dir cannot be written")

    monkeypatch.setattr(Evaluate, "evaluate_model", no_evaluation)
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(Training.UsageError, match=r"Cannot write into .*notes\.txt/results: .*notes\.txt is a file"):
        run("evaluate", tmp_path, model_path=tiny_model[0], results_dir=str(tmp_path / "notes.txt" / "results"))

    rows = [fake_row("tiny", "DSD100", "song", source) for source in ("accompaniment", "voice")]
    monkeypatch.setattr(Evaluate, "evaluate_model", lambda *args, **kwargs: rows)
    fsync = os.fsync

    def full_disk_for_per_song(fd):
        if ".per_song.csv." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_for_per_song)
    with pytest.raises(Training.UsageError, match=r"per_song\.csv: No space left on device"):
        run("evaluate", tmp_path, model_path=tiny_model[0])
    assert "BSS Eval results in dB" in caplog.text
    assert glob.glob(str(tmp_path / "results" / "evaluate_*" / "results.json"))
