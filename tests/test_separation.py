"""Separation.py, ModelFolder.py and SeparateFiles.py: whole-song chunking, the restored
separator, and separate_path."""

import os
import re
import shutil

import numpy as np
import pytest
import soundfile

from common import Utils
from evaluation import SeparateFiles, Separation

from conftest import sine, write_wav
from tiny_model import TINY_CONFIG, identity_predict, signals


@pytest.mark.parametrize("frames, expected", [(5, [0]), (18, [0]), (36, [0, 18]), (40, [0, 18, 22]), (19, [0, 1])])
def test_chunk_starts_cover_the_song_with_the_last_chunk_at_the_end(frames, expected):
    assert Separation.chunk_starts(frames, 18) == expected


@pytest.mark.parametrize("num_fft", [128, 100])  # F_out - F = 1 and 15 frequency rows
@pytest.mark.parametrize("num_frames", [1, 5, 18, 36, 40, 101])
def test_identity_separator_reconstructs_every_frame(num_frames, num_fft):
    config = TINY_CONFIG.replace(num_fft=num_fft)
    input_shape, output_shape = config.network.input_shape, config.network.output_shape
    magnitude = np.random.default_rng(num_frames).random((num_fft // 2 + 1, num_frames)).astype(np.float32) + 0.1
    batches = []
    predict = identity_predict(output_shape)

    def recording_predict(batch):
        batches.append(batch.shape)
        return predict(batch)

    estimates = Separation.separate_spectrogram(magnitude, recording_predict, config, batch_size=2)

    np.testing.assert_array_equal(estimates["voice"], magnitude)
    np.testing.assert_array_equal(estimates["accompaniment"], np.zeros_like(magnitude))
    assert sum(shape[0] for shape in batches) == len(Separation.chunk_starts(num_frames, output_shape[1]))
    assert all(shape[0] <= 2 and shape[1:] == tuple(input_shape) + (1,) for shape in batches)


def test_context_frames_are_zero_at_the_song_edges():
    input_shape, output_shape = TINY_CONFIG.network.input_shape, TINY_CONFIG.network.output_shape
    seen = []

    def predict(batch):
        seen.append(batch.copy())
        return identity_predict(output_shape)(batch)

    Separation.separate_spectrogram(np.ones((65, 40), np.float32), predict, TINY_CONFIG, batch_size=8)
    context = (input_shape[1] - output_shape[1]) // 2
    first_chunk = seen[0][0, :, :, 0]
    assert not first_chunk[:, :context].any() and first_chunk[:, context : context + 18].any()


@pytest.mark.parametrize("length", [300, 8192 + 4097])
def test_identity_separator_reconstructs_audio_of_odd_length(length):
    output_shape = TINY_CONFIG.network.output_shape
    rng = np.random.default_rng(1)
    audio = (0.3 * np.sin(np.arange(length) * 0.05) + 0.05 * rng.standard_normal(length)).astype(np.float32)

    estimates = Separation.separate_audio(audio, identity_predict(output_shape), TINY_CONFIG, batch_size=4)

    assert {name: len(signal) for name, signal in estimates.items()} == {"accompaniment": length, "voice": length}
    np.testing.assert_allclose(estimates["voice"], audio, atol=1e-5)
    assert np.max(np.abs(estimates["accompaniment"])) < 1e-6


def test_predict_fn_with_wrong_output_shape_is_reported():
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        Separation.separate_spectrogram(np.ones((65, 20), np.float32), lambda batch: {"voice": batch}, TINY_CONFIG)


def test_separator_restores_the_saved_weights(tiny_model):
    folder, batch, expected = tiny_model
    with Separation.Separator(folder, batch_size=4) as separator:
        outputs = separator.predict(batch)
        audio = np.asarray(signals(1.0)[0] + 0.001, np.float32)[:5001]
        separated = separator.separate(audio)
        spectrogram = separator.separate_spectrogram(np.ones((65, 30), np.float32))
    for name in TINY_CONFIG.network.sources:
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-5, atol=1e-6)
        assert separated[name].shape == (5001,) and np.any(separated[name])
        assert spectrogram[name].shape == (65, 30)
    with Separation.Separator(os.path.join(folder, "model-7")) as separator:  # a checkpoint prefix
        np.testing.assert_allclose(separator.predict(batch)["voice"], expected["voice"], rtol=1e-5, atol=1e-6)


def test_missing_model_parts_give_clear_errors(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Separation.Separator(str(tmp_path / "nowhere"))
    no_checkpoint = tmp_path / "no_checkpoint"
    no_checkpoint.mkdir()
    Utils.atomic_write_json(str(no_checkpoint / "model_config.json"), TINY_CONFIG.to_dict())
    with pytest.raises(FileNotFoundError, match="no TensorFlow checkpoint"):
        Separation.Separator(str(no_checkpoint))
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    for name in os.listdir(tiny_model[0]):
        if name != "model_config.json":
            with open(os.path.join(tiny_model[0], name), "rb") as source, open(no_config / name, "wb") as target:
                target.write(source.read())
    with pytest.raises(FileNotFoundError, match="model_config.json"):
        Separation.Separator(str(no_config))


def test_checkpoint_of_another_architecture_is_reported(tmp_path, tiny_model):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    for name in os.listdir(tiny_model[0]):
        with open(os.path.join(tiny_model[0], name), "rb") as source, open(folder / name, "wb") as target:
            target.write(source.read())
    Utils.atomic_write_json(str(folder / "model_config.json"), TINY_CONFIG.replace(num_initial_filters=8).to_dict())
    with pytest.raises(ValueError, match="does not match its model_config.json"):
        Separation.Separator(str(folder))


def test_a_model_config_edited_to_fewer_layers_is_refused_naming_the_unused_variables(tmp_path, tiny_model):
    folder = tmp_path / "fewer_layers"
    shutil.copytree(tiny_model[0], folder)
    assert TINY_CONFIG.network.num_layers == 2
    Utils.atomic_write_json(str(folder / "model_config.json"), TINY_CONFIG.replace(num_layers=1).to_dict())
    with pytest.raises(ValueError, match="does not match its model_config.json.*has no place in the network"):
        Separation.Separator(str(folder))
    out = tmp_path / "out"
    song = write_wav(tmp_path / "in.wav", sine(440, 1.0), 44100)
    with pytest.raises(ValueError, match="does not match"):
        SeparateFiles.separate_path(str(folder), song, str(out))
    assert not out.exists()  # refused before anything was written


def test_separate_path_writes_outputs_at_the_input_rate_and_length(tmp_path, tiny_model):
    length = 44100 + 4411
    audio = np.stack([sine(440, length / 44100), sine(660, length / 44100)], axis=1)
    song = write_wav(tmp_path / "in" / "my song.wav", audio, 44100)
    out = tmp_path / "out"

    written = SeparateFiles.separate_path(tiny_model[0], song, str(out), batch_size=8, mode="model")

    assert [os.path.basename(path) for path in written] == ["my song_accompaniment.wav", "my song_voice.wav"]
    for path in written:
        info = soundfile.info(path)
        assert (info.samplerate, info.frames, info.channels) == (44100, length, 1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        SeparateFiles.separate_path(tiny_model[0], song, str(out))
    assert SeparateFiles.separate_path(tiny_model[0], song, str(out), overwrite=True) == written
    for path in written:  # the default mode keeps the input's two channels
        assert soundfile.info(path).channels == 2


def test_separate_path_errors_name_the_problem(tmp_path, tiny_model):
    song = write_wav(tmp_path / "in" / "a.wav", sine(440, 0.5, 22050), 22050)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SeparateFiles.separate_path(str(tmp_path / "no_model"), song, str(tmp_path / "out"))
    corrupt = tmp_path / "in" / "b.wav"
    corrupt.write_bytes(b"RIFF\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="b.wav"):
        SeparateFiles.separate_path(tiny_model[0], str(tmp_path / "in"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # inputs are checked before anything is written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SeparateFiles.separate_path(tiny_model[0], str(tmp_path / "missing.wav"), str(tmp_path / "out"))


def test_separate_path_writes_nothing_for_a_file_with_non_finite_samples(tmp_path, tiny_model):
    write_wav(tmp_path / "in" / "a good one.wav", sine(440, 0.5, 22050), 22050)
    audio = sine(330, 1.0, 22050, channels=2)
    audio[int(0.75 * 22050), 0] = np.nan
    bad = write_wav(tmp_path / "in" / "b.wav", audio, 22050)
    for input_path in (bad, str(tmp_path / "in")):
        with pytest.raises(ValueError, match=re.escape(bad) + r".*\(at 0\.750 s\) is nan"):
            SeparateFiles.separate_path(tiny_model[0], input_path, str(tmp_path / "out"))
        assert not (tmp_path / "out").exists()  # not even the good file's outputs


def test_a_model_path_that_is_a_file_or_a_damaged_model_config_is_named(tmp_path, tiny_model):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ValueError, match=re.escape(str(text)) + r" is a file, not a checkpoint folder"):
        Separation.Separator(str(text))
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model[0], damaged)
    (damaged / "model_config.json").write_bytes(np.random.default_rng(0).bytes(200))
    with pytest.raises(ValueError, match=re.escape(str(damaged / "model_config.json")) + " is not a JSON text file"):
        Separation.Separator(str(damaged))
    (damaged / "model_config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"model_config\.json holds a JSON list, not the model_config object"):
        Separation.Separator(str(damaged))
