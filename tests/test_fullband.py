"""FullBand.py and the ``separate`` command's modes: masks carried from the model's grid to the
input's STFT, full-band outputs with the input's channels, the model mode as before."""

import dataclasses
import os

import numpy as np
import pytest
import soundfile
import soxr

import Input
from evaluation import FullBand, SeparateFiles, Separation

from conftest import write_wav
from tiny_model import TINY_CONFIG

PAPER_GRID = dataclasses.replace(TINY_CONFIG.signal, num_fft=512, num_hop=256)


def high_band_fraction(audio, sample_rate, above_hz=4200.0):
    """Share of the energy of ``audio`` ([samples] or [samples, channels]) above ``above_hz``."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float64), axis=0)) ** 2
    frequencies = np.fft.rfftfreq(len(audio), 1.0 / sample_rate)
    return float(spectrum[frequencies > above_hz].sum() / spectrum.sum())


def stereo_song(seconds=1.3, sample_rate=44100, seed=0):
    """[samples, 2]: a tone on the left, a tone and white noise (energy up to 22 kHz) on the right."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    left = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(len(t))
    right = 0.2 * np.sin(2 * np.pi * 550 * t) + 0.1 * rng.standard_normal(len(t))
    return np.stack([left, right], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    "sample_rate, expected", [(8192, (512, 256)), (44100, (2756, 1378)), (22050, (1378, 689)), (16000, (1000, 500))]
)
def test_the_input_grid_has_the_models_window_and_hop_durations(sample_rate, expected):
    assert FullBand.input_grid(sample_rate, PAPER_GRID) == expected


def test_shares_add_up_to_one_and_are_equal_where_every_source_is_silent():
    voice = np.array([[1.0, 0.0, 3.0], [0.0, 0.0, -1.0]], np.float32)
    accompaniment = np.array([[3.0, 0.0, 1.0], [2.0, 0.0, 0.0]], np.float32)

    shares = FullBand.shares({"accompaniment": accompaniment, "voice": voice})

    np.testing.assert_allclose(shares["voice"], [[0.25, 0.5, 0.75], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(shares["voice"] + shares["accompaniment"], np.ones((2, 3)))


def test_transferred_masks_follow_the_model_in_its_band_and_its_top_band_above_it():
    sample_rate, bins, frames = 44100, 257, 40
    frequencies = np.arange(bins) * 16.0  # the model's bins: 8192 Hz / 512
    rng = np.random.default_rng(0)
    voice = np.where(frequencies < 1000, 0.2, 3.0)[:, np.newaxis] * np.ones((1, frames))
    accompaniment = np.ones((bins, frames))
    # In the top band (2606-3686 Hz) the voice leads in the first half, the accompaniment in the second.
    top = (frequencies >= 2606) & (frequencies <= 3686)
    voice[np.ix_(top, np.arange(20, frames))] = 0.1
    accompaniment += 0.01 * rng.random((bins, frames))
    estimates = {"accompaniment": accompaniment, "voice": voice}
    num_fft, num_hop = FullBand.input_grid(sample_rate, PAPER_GRID)
    input_bins, input_frames = num_fft // 2 + 1, 1 + 2 * frames

    masks = FullBand.transfer_masks(estimates, PAPER_GRID, sample_rate, input_bins, input_frames)

    assert masks["voice"].shape == (input_bins, input_frames)
    np.testing.assert_allclose(masks["voice"] + masks["accompaniment"], 1.0, atol=1e-6)
    assert masks["voice"].min() >= 0.0 and masks["voice"].max() <= 1.0
    input_hz = np.arange(input_bins) * sample_rate / num_fft
    model = FullBand.shares(estimates)["voice"]
    # Below 1 kHz and in 1.1-2.5 kHz the model's masks (on this grid bins and frames coincide).
    for hz in (500.0, 2000.0):
        row = int(np.argmin(np.abs(input_hz - hz)))
        np.testing.assert_allclose(masks["voice"][row, 10], model[int(round(input_hz[row] / 16.0)), 10], atol=1e-3)
    high = input_hz > 4096
    assert np.all(masks["voice"][high, 5:15] > 0.7) and np.all(masks["voice"][high, 50:] < 0.2)
    band_share = voice[top, 10].sum() / (voice[top, 10].sum() + accompaniment[top, 10].sum())
    np.testing.assert_allclose(masks["voice"][high, 10], band_share, rtol=1e-5)


def test_a_stereo_song_at_44100_gives_stereo_sources_that_add_up_to_it(tmp_path, tiny_model):
    song = stereo_song()
    path = write_wav(tmp_path / "in" / "song.wav", song, 44100)

    written = SeparateFiles.separate_path(tiny_model[0], path, str(tmp_path / "full"), batch_size=8)
    model_mode = SeparateFiles.separate_path(tiny_model[0], path, str(tmp_path / "model"), batch_size=8, mode="model")

    outputs = {}
    for output in written:
        audio, rate = soundfile.read(output, dtype="float32", always_2d=True)
        assert (rate, audio.shape) == (44100, song.shape)
        outputs[output] = audio
    np.testing.assert_allclose(sum(outputs.values()), song, atol=1e-5)
    assert not np.allclose(*outputs.values(), atol=1e-3)  # the sources differ
    for full, mono in zip(written, model_mode):
        full_audio = outputs[full]
        mono_audio, rate = soundfile.read(mono, dtype="float32", always_2d=True)
        assert (rate, mono_audio.shape) == (44100, (len(song), 1))
        # The right channel's noise reaches 22 kHz; the model mode keeps nothing above 4.2 kHz.
        assert high_band_fraction(mono_audio, 44100) < 1e-4
        assert high_band_fraction(full_audio[:, 1], 44100) > 0.1
        assert high_band_fraction(full_audio[:, 1], 44100) > 100 * high_band_fraction(mono_audio, 44100)
        assert not np.allclose(full_audio[:, 0], full_audio[:, 1], atol=1e-3)  # channels are kept apart


def test_a_mono_song_gives_mono_sources_at_its_rate(tmp_path, tiny_model):
    song = stereo_song(0.7, 22050)[:, 1]
    path = write_wav(tmp_path / "mono.flac", song, 22050, subtype="PCM_24")
    song = soundfile.read(path, dtype="float32")[0]

    written = SeparateFiles.separate_path(tiny_model[0], path, str(tmp_path / "out"), batch_size=8)

    audio = [soundfile.read(output, dtype="float32", always_2d=True) for output in written]
    assert [(rate, signal.shape) for signal, rate in audio] == [(22050, (len(song), 1))] * 2
    np.testing.assert_allclose(audio[0][0][:, 0] + audio[1][0][:, 0], song, atol=1e-5)


def test_the_model_mode_writes_what_the_models_reconstruction_gives(tmp_path, tiny_model):
    song = stereo_song(0.9, 44100, seed=3)
    path = write_wav(tmp_path / "song.wav", song, 44100)

    written = SeparateFiles.separate_path(tiny_model[0], path, str(tmp_path / "out"), batch_size=8, mode="model")

    with Separation.Separator(tiny_model[0], batch_size=8) as separator:
        expected = separator.separate(Input.read_audio(path, TINY_CONFIG.signal.expected_sr, mono_downmix=True))
    for output, source in zip(written, TINY_CONFIG.network.sources):
        audio, rate = soundfile.read(output, dtype="float32")
        upsampled = soxr.resample(expected[source], TINY_CONFIG.signal.expected_sr, 44100, quality="HQ")
        np.testing.assert_array_equal(audio, Input.fit_length(upsampled.astype(np.float32), len(song)))


def test_a_bad_mode_is_refused_before_anything_is_written(tmp_path, tiny_model):
    path = write_wav(tmp_path / "song.wav", stereo_song(0.3), 44100)
    with pytest.raises(ValueError, match=r"separate_mode='wide' is not a separation mode.*\"fullband\".*\"model\""):
        SeparateFiles.separate_path(tiny_model[0], path, str(tmp_path / "out"), mode="wide")
    assert not os.path.exists(tmp_path / "out")


def test_the_separate_command_passes_its_mode_and_refuses_a_bad_one(tmp_path, tiny_model):
    import Training

    path = write_wav(tmp_path / "song.wav", stereo_song(0.5), 44100)
    settings = {"model_path": tiny_model[0], "input_path": path, "output_dir": str(tmp_path / "out")}
    with pytest.raises(Training.UsageError, match=r"separate_mode='full band' is not a separation mode"):
        Training.ex.run("separate", config_updates=dict(settings, separate_mode="full band"))
    assert not os.path.exists(tmp_path / "out")
    Training.ex.run("separate", config_updates=dict(settings, separate_mode="model"))
    assert soundfile.info(str(tmp_path / "out" / "song_voice.wav")).channels == 1
    Training.ex.run("separate", config_updates=dict(settings, overwrite=True))
    assert soundfile.info(str(tmp_path / "out" / "song_voice.wav")).channels == 2
