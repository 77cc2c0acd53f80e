"""Evaluate.py: BSS Eval of a model on songs, in this process and in worker processes."""

import os
import re

import numpy as np
import pytest
import soundfile

import Evaluate
import Input
import Metrics
import Results
from conftest import write_wav
from tiny_model import SR, make_song


def test_evaluate_model_in_process_and_in_worker_processes_agree(tmp_path, tiny_model):
    songs = [make_song(str(tmp_path), "one", SR, 1), make_song(str(tmp_path), "two", 16000, 2, silent_voice=True)]

    rows = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=1, batch_size=8, model_name="tiny")
    parallel = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=2, batch_size=8, model_name="tiny")

    assert [(row["song"], row["source"]) for row in rows] == [("one", "accompaniment"), ("one", "voice"),
                                                              ("two", "accompaniment"), ("two", "voice")]
    assert all(set(row) == set(Results.PER_SONG_COLUMNS) for row in rows)
    assert rows[3]["undefined"] and rows[3]["undefined_reason"] == "silent reference"
    assert not rows[0]["undefined"] and rows[0]["seconds"] == pytest.approx(1.5)
    for serial, worker in zip(rows, parallel):
        for metric in Metrics.METRICS:
            assert serial[metric] == pytest.approx(worker[metric], nan_ok=True)


@pytest.mark.parametrize("num_workers, bad_file", [(1, "mix.wav"), (2, "voice.wav")])
def test_evaluation_refuses_songs_with_non_finite_samples(tmp_path, tiny_model, num_workers, bad_file):
    songs = [make_song(str(tmp_path), "good", SR, 1), make_song(str(tmp_path), "bad", SR, 2)]
    path = os.path.join(str(tmp_path), "bad", bad_file)
    audio = soundfile.read(path, dtype="float32")[0]
    audio[SR // 4] = np.inf
    write_wav(path, audio, SR)
    with pytest.raises(Input.NonFiniteAudioError, match=re.escape(path) + r".*\(at 0\.250 s\) is inf"):
        Evaluate.evaluate_model(tiny_model[0], songs, num_workers=num_workers, batch_size=8)


MAIN_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
with open({marker!r}, "a") as handle:  # runs again in every process that re-runs this script
    handle.write(f"{{os.getpid()}}\\n")

if __name__ == "__main__":
    import numpy as np
    import Evaluate

    t = np.arange(8192) / 8192
    references = [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (220, 330)]
    jobs = [Evaluate.SongJob(index=i, model="m", database="d", song=str(i), source_names=("a", "b"),
                             source_paths=({a!r}, {b!r}), mixture=references[0] + references[1],
                             estimates={{"a": references[0], "b": references[1]}}, sample_rate=8192)
            for i in range(3)]
    results = Evaluate._run_jobs(iter(jobs), len(jobs), num_workers=2)
    assert sorted(results) == [0, 1, 2], results
"""


def test_bss_eval_workers_do_not_run_the_main_script_again(tmp_path):
    import subprocess
    import sys

    t = np.arange(SR) / SR
    paths = [write_wav(tmp_path / f"{f}.wav", 0.3 * np.sin(2 * np.pi * f * t), SR) for f in (220, 330)]
    marker = tmp_path / "imports.txt"
    script = tmp_path / "main_script.py"
    script.write_text(MAIN_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                         marker=str(marker), a=paths[0], b=paths[1]))
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    # Only the main process ran the script; the two BSS Eval workers did not (for Training.py,
    # each would have imported TensorFlow).
    assert len(marker.read_text().split()) == 1
