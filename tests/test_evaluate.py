"""Tests of Evaluate.py: whole-song chunking, metrics, result files, checkpoints, separate_path."""

import csv
import json
import math
import os
import re

import numpy as np
import pytest
import soundfile
import tensorflow as tf

import Evaluate
import Input
import Utils
from Models.Unet import Unet
from Sample import Sample
from tests.conftest import sine, write_wav

tf.compat.v1.disable_eager_execution()

SR = 8192
TINY_CONFIG = {"sources": ["accompaniment", "voice"], "expected_sr": SR, "mono_downmix": True,
               "num_fft": 128, "num_hop": 64, "num_layers": 2, "num_initial_filters": 4,
               "num_frames": 16, "num_freqs": 64}


def identity_predict(output_shape):
    """A separator that returns the mixture (centre crop) as voice and silence as accompaniment."""

    def predict(batch):
        voice = Input.crop(batch, output_shape)
        return {"accompaniment": np.zeros_like(voice), "voice": voice}

    return predict


def signals(seconds=2.0, seed=0):
    """Two independent test sources [2, samples] at SR: a chord-like tone and filtered noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t + 1.0)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, mode="same") * 0.2
    return np.stack([tone, noise])


# ----------------------------------------------------------------------------------------
# Chunking
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, expected", [(5, [0]), (18, [0]), (36, [0, 18]), (40, [0, 18, 22]),
                                              (19, [0, 1])])
def test_chunk_starts_cover_the_song_with_the_last_chunk_at_the_end(frames, expected):
    assert Evaluate.chunk_starts(frames, 18) == expected


@pytest.mark.parametrize("num_fft", [128, 100])  # F_out - F = 1 and 15 frequency rows
@pytest.mark.parametrize("num_frames", [1, 5, 18, 36, 40, 101])
def test_identity_separator_reconstructs_every_frame(num_frames, num_fft):
    config = dict(TINY_CONFIG, num_fft=num_fft)
    input_shape, output_shape = Evaluate.network_shapes(config)
    magnitude = np.random.default_rng(num_frames).random((num_fft // 2 + 1, num_frames)).astype(np.float32) + 0.1
    batches = []
    predict = identity_predict(output_shape)

    def recording_predict(batch):
        batches.append(batch.shape)
        return predict(batch)

    estimates = Evaluate.separate_spectrogram(magnitude, recording_predict, config, batch_size=2)

    np.testing.assert_array_equal(estimates["voice"], magnitude)
    np.testing.assert_array_equal(estimates["accompaniment"], np.zeros_like(magnitude))
    assert sum(shape[0] for shape in batches) == len(Evaluate.chunk_starts(num_frames, output_shape[1]))
    assert all(shape[0] <= 2 and shape[1:] == tuple(input_shape) + (1,) for shape in batches)


def test_context_frames_are_zero_at_the_song_edges():
    input_shape, output_shape = Evaluate.network_shapes(TINY_CONFIG)
    seen = []

    def predict(batch):
        seen.append(batch.copy())
        return identity_predict(output_shape)(batch)

    Evaluate.separate_spectrogram(np.ones((65, 40), np.float32), predict, TINY_CONFIG, batch_size=8)
    context = (input_shape[1] - output_shape[1]) // 2
    first_chunk = seen[0][0, :, :, 0]
    assert not first_chunk[:, :context].any() and first_chunk[:, context:context + 18].any()


@pytest.mark.parametrize("length", [300, 8192 + 4097])
def test_identity_separator_reconstructs_audio_of_odd_length(length):
    _, output_shape = Evaluate.network_shapes(TINY_CONFIG)
    rng = np.random.default_rng(1)
    audio = (0.3 * np.sin(np.arange(length) * 0.05) + 0.05 * rng.standard_normal(length)).astype(np.float32)

    estimates = Evaluate.separate_audio(audio, identity_predict(output_shape), TINY_CONFIG, batch_size=4)

    assert {name: len(signal) for name, signal in estimates.items()} == {"accompaniment": length, "voice": length}
    np.testing.assert_allclose(estimates["voice"], audio, atol=1e-5)
    assert np.max(np.abs(estimates["accompaniment"])) < 1e-6


def test_predict_fn_with_wrong_output_shape_is_reported():
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        Evaluate.separate_spectrogram(np.ones((65, 20), np.float32),
                                      lambda batch: {"voice": batch}, TINY_CONFIG)


# ----------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------

def test_perfect_estimates_score_high_and_swapped_estimates_low():
    references = signals()
    mixture = references.sum(axis=0)

    perfect = Evaluate.compute_song_metrics(references, references, mixture)
    swapped = Evaluate.compute_song_metrics(references, references[::-1], mixture)

    for result in perfect:
        assert result["SDR"] > 60 and result["SNR_scale_optimal"] > 60 and result["NSDR"] > 0
        assert not result["undefined_metrics"]
    for result in swapped:
        assert result["SDR"] < 0 and result["SNR_scale_optimal"] < 0


def test_scale_optimal_snr_is_scale_invariant_and_follows_its_formula():
    reference, other = signals()
    estimate = 0.5 * reference + 0.1 * other
    a = np.dot(estimate, reference) / np.dot(reference, reference)
    expected = 10 * np.log10(np.sum((a * reference) ** 2) / np.sum((a * reference - estimate) ** 2))

    assert Evaluate.scale_optimal_snr(reference, estimate) == pytest.approx(expected)
    assert Evaluate.scale_optimal_snr(reference, 7 * estimate) == pytest.approx(expected)
    assert math.isnan(Evaluate.scale_optimal_snr(np.zeros_like(reference), estimate))


def test_silent_reference_is_undefined_without_noise_and_left_out_of_aggregates():
    references = signals()
    references[1] = 0.0
    estimates = references + 0.01 * signals(seed=3)[::-1]

    accompaniment, voice = Evaluate.compute_song_metrics(references, estimates, references.sum(axis=0))

    assert all(math.isnan(voice[metric]) for metric in Evaluate.METRICS)
    assert voice["undefined_reason"] == ["silent reference"]
    assert accompaniment["SDR"] > 10 and not math.isnan(accompaniment["SNR_scale_optimal"])
    assert set(accompaniment["undefined_metrics"]) == {"SIR", "NSDR", "NSIR"}

    rows = [fake_row("m", "DB", "song1", "voice", sdr=math.nan), fake_row("m", "DB", "song2", "voice", sdr=4.0),
            fake_row("m", "DB", "song3", "voice", sdr=8.0)]
    summary = {(row["database"], row["metric"]): row for row in Evaluate.summarise({"m": rows})}
    assert summary[("all", "SDR")]["mean"] == pytest.approx(6.0)
    assert summary[("DB", "SDR")]["num_undefined"] == 1 and summary[("DB", "SDR")]["num_defined"] == 2


def test_silent_estimate_is_undefined_and_does_not_change_the_other_source():
    references = signals()
    estimates = references + 0.05 * signals(seed=5)
    silent_voice = estimates.copy()
    silent_voice[1] = 0.0

    normal = Evaluate.compute_song_metrics(references, estimates, references.sum(axis=0))
    with_silent = Evaluate.compute_song_metrics(references, silent_voice, references.sum(axis=0))

    assert with_silent[1]["undefined_reason"] == ["silent estimate"]
    assert all(math.isnan(with_silent[1][metric]) for metric in Evaluate.METRICS)
    for metric in Evaluate.METRICS:
        assert with_silent[0][metric] == pytest.approx(normal[0][metric])


# ----------------------------------------------------------------------------------------
# Result files and table
# ----------------------------------------------------------------------------------------

def fake_row(model, database, song, source, sdr=5.0):
    row = {"model": model, "database": database, "song": song, "source": source, "seconds": 30.0}
    row.update({metric: sdr + index for index, metric in enumerate(Evaluate.METRICS)})
    undefined = [metric for metric in Evaluate.METRICS if math.isnan(row[metric])]
    row.update(undefined=bool(undefined), undefined_metrics=";".join(undefined),
               undefined_reason="silent reference" if undefined else "")
    return row


def test_result_files_have_the_documented_columns(tmp_path):
    results = {name: [fake_row(name, database, f"song{i}", source, sdr)
                      for i, (database, sdr) in enumerate([("DSD100", 3.0), ("DSD100", math.nan), ("iKala", 7.5),
                                                           ("iKala", math.inf)])
                      for source in ("accompaniment", "voice")]
               for name in ("supervised", "semi-supervised")}

    paths = Evaluate.write_results(results, str(tmp_path / "out"))

    assert [os.path.basename(path) for path in paths] == ["results.json", "per_song.csv", "summary.csv",
                                                          "sdr_boxplot.png"]
    with open(paths[1], newline="") as handle:
        per_song = list(csv.reader(handle))
    assert tuple(per_song[0]) == Evaluate.PER_SONG_COLUMNS and len(per_song) == 1 + 16
    with open(paths[2], newline="") as handle:
        summary = list(csv.DictReader(handle))
    assert tuple(summary[0]) == Evaluate.SUMMARY_COLUMNS
    dsd_sdr = [row for row in summary if row["model"] == "supervised" and row["database"] == "DSD100"
               and row["source"] == "voice" and row["metric"] == "SDR"][0]
    assert (float(dsd_sdr["mean"]), dsd_sdr["num_defined"], dsd_sdr["num_undefined"]) == (3.0, "1", "1")

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    with open(paths[0]) as handle:
        content = json.loads(handle.read(), parse_constant=reject)
    assert set(content) == {"columns", "per_song", "summary", "undefined_counts"}
    assert set(Evaluate.PER_SONG_COLUMNS) <= set(content["columns"])
    assert content["undefined_counts"]["semi-supervised"]["all"]["voice"]["SDR"] == 1
    assert {row["SDR"] for row in content["per_song"]} == {3.0, None, 7.5, "inf"}
    with open(paths[3], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]

    table = Evaluate.format_results_table(results)
    assert "supervised" in table and "semi-supervised" in table and "iKala" in table
    assert "SNR_scale_optimal" in table


# ----------------------------------------------------------------------------------------
# Checkpoints: a tiny random U-Net saved like Training.py does
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """``(folder, batch, outputs)``: a saved tiny U-Net and its outputs for a fixed batch."""
    folder = str(tmp_path_factory.mktemp("model"))
    input_shape, _ = Evaluate.network_shapes(TINY_CONFIG)
    batch = np.random.default_rng(0).random((3,) + tuple(input_shape) + (1,)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        mixture = tf.compat.v1.placeholder(tf.float32, (None,) + tuple(input_shape) + (1,))
        outputs = Unet(2, 4, TINY_CONFIG["sources"]).get_output(tf.math.log1p(mixture), reuse=False)
        outputs = {name: tf.math.expm1(output) for name, output in outputs.items()}
        with tf.compat.v1.variable_scope("critic_voice"):  # not restored by Evaluate
            tf.compat.v1.get_variable("unused", [2])
        # Positive output biases keep the random ReLU outputs from being silent.
        biases = [variable for variable in tf.compat.v1.global_variables()
                  if "output_" in variable.name and "bias" in variable.name]
        raise_biases = tf.group(*[variable.assign(tf.fill(variable.shape, 0.05)) for variable in biases])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(raise_biases)
            expected = session.run(outputs, {mixture: batch})
            tf.compat.v1.train.Saver().save(session, os.path.join(folder, "model"), global_step=7)
    Utils.atomic_write_json(os.path.join(folder, "model_config.json"), TINY_CONFIG)
    return folder, batch, expected


def test_separator_restores_the_saved_weights(tiny_model):
    folder, batch, expected = tiny_model
    with Evaluate.Separator(folder, batch_size=4) as separator:
        outputs = separator.predict(batch)
        audio = np.asarray(signals(1.0)[0] + 0.001, np.float32)[:5001]
        separated = separator.separate(audio)
        spectrogram = separator.separate_spectrogram(np.ones((65, 30), np.float32))
    for name in TINY_CONFIG["sources"]:
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-5, atol=1e-6)
        assert separated[name].shape == (5001,) and np.any(separated[name])
        assert spectrogram[name].shape == (65, 30)
    with Evaluate.Separator(os.path.join(folder, "model-7")) as separator:  # a checkpoint prefix
        np.testing.assert_allclose(separator.predict(batch)["voice"], expected["voice"], rtol=1e-5, atol=1e-6)


def test_missing_model_parts_give_clear_errors(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Evaluate.Separator(str(tmp_path / "nowhere"))
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    Utils.atomic_write_json(str(no_checkpoint / "model_config.json"), TINY_CONFIG)
    with pytest.raises(FileNotFoundError, match="no TensorFlow checkpoint"):
        Evaluate.Separator(str(no_checkpoint))
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    for name in os.listdir(tiny_model[0]):
        if name != "model_config.json":
            with open(os.path.join(tiny_model[0], name), "rb") as source, open(no_config / name, "wb") as target:
                target.write(source.read())
    with pytest.raises(FileNotFoundError, match="model_config.json"):
        Evaluate.Separator(str(no_config))


def test_checkpoint_of_another_architecture_is_reported(tmp_path, tiny_model):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    for name in os.listdir(tiny_model[0]):
        with open(os.path.join(tiny_model[0], name), "rb") as source, open(folder / name, "wb") as target:
            target.write(source.read())
    Utils.atomic_write_json(str(folder / "model_config.json"), dict(TINY_CONFIG, num_initial_filters=8))
    with pytest.raises(ValueError, match="does not match its model_config.json"):
        Evaluate.Separator(str(folder))


# ----------------------------------------------------------------------------------------
# evaluate_model and separate_path
# ----------------------------------------------------------------------------------------

def make_song(folder, name, sample_rate, seed, silent_voice=False):
    references = signals(1.5, seed)
    if silent_voice:
        references[1] = 0.0
    if sample_rate != SR:
        references = np.stack([Input._resample(np.asarray(ref, np.float32), SR, sample_rate) for ref in references])
    paths = [write_wav(os.path.join(folder, name, file), audio, sample_rate)
             for file, audio in (("mix.wav", references.sum(axis=0)), ("acc.wav", references[0]),
                                 ("voice.wav", references[1]))]
    return tuple(Sample.from_path(path, database="DB" if seed % 2 else "Other", song=name) for path in paths)


def test_evaluate_model_in_process_and_in_worker_processes_agree(tmp_path, tiny_model):
    songs = [make_song(str(tmp_path), "one", SR, 1), make_song(str(tmp_path), "two", 16000, 2, silent_voice=True)]

    rows = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=1, batch_size=8, model_name="tiny")
    parallel = Evaluate.evaluate_model(tiny_model[0], songs, num_workers=2, batch_size=8, model_name="tiny")

    assert [(row["song"], row["source"]) for row in rows] == [("one", "accompaniment"), ("one", "voice"),
                                                              ("two", "accompaniment"), ("two", "voice")]
    assert all(set(row) == set(Evaluate.PER_SONG_COLUMNS) for row in rows)
    assert rows[3]["undefined"] and rows[3]["undefined_reason"] == "silent reference"
    assert not rows[0]["undefined"] and rows[0]["seconds"] == pytest.approx(1.5)
    for serial, worker in zip(rows, parallel):
        for metric in Evaluate.METRICS:
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


def test_separate_path_writes_outputs_at_the_input_rate_and_length(tmp_path, tiny_model):
    length = 44100 + 4411
    audio = np.stack([sine(440, length / 44100), sine(660, length / 44100)], axis=1)
    song = write_wav(tmp_path / "in" / "my song.wav", audio, 44100)
    out = tmp_path / "out"

    written = Evaluate.separate_path(tiny_model[0], song, str(out), batch_size=8)

    assert [os.path.basename(path) for path in written] == ["my song_accompaniment.wav", "my song_voice.wav"]
    for path in written:
        info = soundfile.info(path)
        assert (info.samplerate, info.frames, info.channels) == (44100, length, 1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        Evaluate.separate_path(tiny_model[0], song, str(out))
    assert Evaluate.separate_path(tiny_model[0], song, str(out), overwrite=True) == written


def test_separate_path_errors_name_the_problem(tmp_path, tiny_model):
    song = write_wav(tmp_path / "in" / "a.wav", sine(440, 0.5, 22050), 22050)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Evaluate.separate_path(str(tmp_path / "no_model"), song, str(tmp_path / "out"))
    corrupt = tmp_path / "in" / "b.wav"
    corrupt.write_bytes(b"RIFF\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="b.wav"):
        Evaluate.separate_path(tiny_model[0], str(tmp_path / "in"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # inputs are checked before anything is written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Evaluate.separate_path(tiny_model[0], str(tmp_path / "missing.wav"), str(tmp_path / "out"))


def test_separate_path_writes_nothing_for_a_file_with_non_finite_samples(tmp_path, tiny_model):
    write_wav(tmp_path / "in" / "a good one.wav", sine(440, 0.5, 22050), 22050)
    audio = sine(330, 1.0, 22050, channels=2)
    audio[int(0.75 * 22050), 0] = np.nan
    bad = write_wav(tmp_path / "in" / "b.wav", audio, 22050)
    for input_path in (bad, str(tmp_path / "in")):
        with pytest.raises(ValueError, match=re.escape(bad) + r".*\(at 0\.750 s\) is nan"):
            Evaluate.separate_path(tiny_model[0], input_path, str(tmp_path / "out"))
        assert not (tmp_path / "out").exists()  # not even the good file's outputs
