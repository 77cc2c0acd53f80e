"""Evaluate.py: BSS Eval of a model on songs, in this process and in worker processes."""

import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile

import Evaluate
import Input
from evaluation import Metrics, Results

from conftest import write_wav
from tiny_model import SR, make_song


def test_evaluate_model_in_process_and_in_worker_processes_agree(tmp_path, tiny_model):
    songs = [make_song(str(tmp_path), "one", SR, 1), make_song(str(tmp_path), "two", 16000, 2, silent_voice=True)]

    rows = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=1, batch_size=8, model_name="tiny")
    parallel = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=2, batch_size=8, model_name="tiny")

    assert [(row["song"], row["source"]) for row in rows] == [
        ("one", "accompaniment"),
        ("one", "voice"),
        ("two", "accompaniment"),
        ("two", "voice"),
    ]
    # Both BSS Eval versions by default; framewise_v4 is for museval's JSON, not a column.
    assert all(set(row) == set(Results.PER_SONG_COLUMNS) | {Results.FRAMEWISE_V4} for row in rows)
    assert rows[3]["undefined"] and rows[3]["undefined_reason"] == "silent reference"
    assert not rows[0]["undefined"] and rows[0]["seconds"] == pytest.approx(1.5)
    assert (rows[0]["frames_v4"], rows[0]["undefined_frames_v4"]) == (1, 0)  # 1.5 s: one whole 1-s frame
    for serial, worker in zip(rows, parallel):
        for metric in Metrics.ALL_METRICS + Metrics.V4_FRAME_COUNTS:
            assert serial[metric] == pytest.approx(worker[metric], nan_ok=True)


def test_bss_eval_selects_the_versions_computed_and_a_bad_value_fails_before_separating(tmp_path, tiny_model):
    songs = [make_song(str(tmp_path), "one", SR, 1)]

    v3 = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=1, batch_size=8, bss_eval=["v3"])
    v4 = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=1, batch_size=8, bss_eval=["v4"])

    assert all(set(row) == set(Results.per_song_columns(Metrics.METRICS)) for row in v3)
    assert all(set(row) == set(Results.per_song_columns(Metrics.METRICS_V4)) | {Results.FRAMEWISE_V4} for row in v4)
    assert all(not math.isnan(row["SDR_v4"]) for row in v4)
    with pytest.raises(ValueError, match=r"bss_eval=\['v2'\]: use a list of 'v3'"):
        Evaluate.evaluate_model(str(tmp_path / "no model here"), songs, bss_eval=["v2"])


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


WORKER_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
import numpy as np
import Evaluate

t = np.arange(3 * 8192) / 8192
references = [(0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (220, 330)]
job = Evaluate.SongJob(index=0, model="m", database="d", song="s", source_names=("a", "b"),
                       source_paths=({a!r}, {b!r}), mixture=references[0] + references[1],
                       estimates={{"a": references[0] + 0.01, "b": references[1]}}, sample_rate=8192)
start = time.perf_counter()
rows = Evaluate.evaluate_song(job)  # what a BSS Eval worker runs, v3 and v4 by default
assert "museval" in sys.modules and rows[0]["frames_v4"] == 3, rows
print("tensorflow" in sys.modules, "torch" in sys.modules)
"""


def test_a_bss_eval_worker_computes_v4_with_museval_without_importing_tensorflow(tmp_path):
    t = np.arange(3 * SR) / SR
    paths = [write_wav(tmp_path / f"{f}.wav", 0.3 * np.sin(2 * np.pi * f * t), SR) for f in (220, 330)]
    script = tmp_path / "worker.py"
    script.write_text(
        WORKER_SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), a=paths[0], b=paths[1])
    )
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["False", "False"]  # museval (musdb, stempeg) pulls in no TensorFlow


def test_bss_eval_workers_do_not_run_the_main_script_again(tmp_path):
    t = np.arange(SR) / SR
    paths = [write_wav(tmp_path / f"{f}.wav", 0.3 * np.sin(2 * np.pi * f * t), SR) for f in (220, 330)]
    marker = tmp_path / "imports.txt"
    script = tmp_path / "main_script.py"
    script.write_text(
        MAIN_SCRIPT.format(
            root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), marker=str(marker), a=paths[0], b=paths[1]
        )
    )
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    # Only the main process ran the script; the two BSS Eval workers did not (for Training.py,
    # each would have imported TensorFlow).
    assert len(marker.read_text().split()) == 1
