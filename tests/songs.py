"""Chirp songs and generator settings shared by the tests of the input pipeline
(Input, Sections, BatchGenerators, ReaderPool)."""

import numpy as np
import soundfile

import Input
from pipeline import AudioCache
from Sample import Sample

from conftest import write_wav

SR = 8192
FFT, HOP = 256, 128
BINS = FFT // 2 + 1


def chirp(seconds, sample_rate, low=150.0, high=3800.0, amplitude=0.4):
    """A sine whose frequency rises linearly with time: every frame's content encodes its time."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def make_sample(path, audio, sample_rate=SR):
    return Sample.from_path(write_wav(path, audio, sample_rate))


def chirp_song(folder, name, seconds, sample_rate=SR, silent_voice=False):
    """(mixture, accompaniment, voice) where the accompaniment IS the mixture's audio, so the
    centre of every mixture window must equal its accompaniment window exactly."""
    audio = chirp(seconds, sample_rate)
    mixture = make_sample(folder / f"{name}_mix.wav", audio, sample_rate)
    accompaniment = make_sample(folder / f"{name}_acc.wav", audio, sample_rate)
    voice = None if silent_voice else make_sample(folder / f"{name}_voice.wav", 0.5 * audio[::-1], sample_rate)
    return mixture, accompaniment, voice


def whole_song_magnitudes(sample, num_fft=FFT, num_hop=HOP):
    return np.abs(Input.stft(Input.read_audio(sample.path, SR), num_fft, num_hop))


def find_frame(window, spectrogram):
    """Start frame where ``window`` [F, T] matches ``spectrogram`` [F, N] best."""
    width = window.shape[1]
    errors = [np.abs(spectrogram[:, p : p + width] - window).max() for p in range(spectrogram.shape[1] - width + 1)]
    return int(np.argmin(errors)), float(np.min(errors))


def generator_kwargs(**overrides):
    settings = dict(
        batch_size=4,
        expected_sr=SR,
        num_fft=FFT,
        num_hop=HOP,
        duration=1.0,
        cache_size=4,
        num_workers=0,
        min_replacement_rate=2,
        seed=0,
    )
    settings.update(overrides)
    return settings


def song_with_a_bad_voice_sample(folder, name, value=np.nan, sample_rate=SR, bad_seconds=0.25):
    """A 1 s chirp song whose voice file holds one non-finite sample at ``bad_seconds``."""
    song = chirp_song(folder, name, 1.0, sample_rate)
    audio = soundfile.read(song[2].path, dtype="float32")[0]
    audio[int(bad_seconds * sample_rate)] = value
    write_wav(song[2].path, audio, sample_rate)
    return song


def magnitude_store(songs, folder, num_fft=FFT, num_hop=HOP):
    samples = [sample for song in songs for sample in song if not Input.is_silent(sample)]
    return AudioCache.magnitude_store({"train_sup": samples}, str(folder), SR, num_fft, num_hop, num_workers=0)


class ExplodingSample:
    """Stands for a bug in the reading code: touching ``path`` raises inside the worker."""

    duration, sample_rate, channels = 2.0, SR, 1

    @property
    def path(self):
        raise ZeroDivisionError("exploding sample for the worker crash test")


def check_paired_alignment(batch, songs, output_shape, input_shape, num_fft=FFT, num_hop=HOP):
    """Every mixture window's centre equals its accompaniment window, and the whole mixture
    window equals the song's spectrogram around it, with zeros past the song's ends."""
    context = (input_shape[1] - output_shape[1]) // 2
    whole = [whole_song_magnitudes(song[1], num_fft, num_hop) for song in songs]
    mixture = Input.unpad_freqs(batch[0], num_fft // 2 + 1)[..., 0]
    accompaniment = Input.unpad_freqs(batch[1], num_fft // 2 + 1)[..., 0]
    edges = set()
    for mix_window, acc_window in zip(mixture, accompaniment):
        np.testing.assert_allclose(mix_window[:, context : context + output_shape[1]], acc_window, atol=1e-4)
        song, (start, error) = min(
            ((s, find_frame(acc_window, w)) for s, w in enumerate(whole)), key=lambda found: found[1][1]
        )
        assert error < 1e-3, "source window is not a window of any song"
        padded = np.pad(whole[song], [(0, 0), (context, context + output_shape[1])])
        np.testing.assert_allclose(mix_window, padded[:, start : start + input_shape[1]], atol=1e-3)
        if start < context:
            assert not mix_window[:, : context - start - 1].any()  # frames wholly before the start
            edges.add("start")
        if start + output_shape[1] + context > whole[song].shape[1]:
            edges.add("end")
    return edges
