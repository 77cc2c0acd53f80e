"""Tests of Input.py: audio reading, spectrogram helpers, batch generators and their workers.

Most generator tests read in the calling process (``num_workers=0``) with tiny shapes; the
worker tests use one or two processes and check errors, liveness and clean shutdown.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import soundfile

from conftest import ROOT, sine, wait_until, write_wav

import AudioCache
import Input
from Sample import Sample

SR = 8192
FFT, HOP = 256, 128
BINS = FFT // 2 + 1


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------

def chirp(seconds, sample_rate, low=150.0, high=3800.0, amplitude=0.4):
    """A sine whose frequency rises linearly with time: every frame's content encodes its time."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    phase = 2 * np.pi * (low * t + (high - low) * t ** 2 / (2 * seconds))
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
    errors = [np.abs(spectrogram[:, p:p + width] - window).max() for p in range(spectrogram.shape[1] - width + 1)]
    return int(np.argmin(errors)), float(np.min(errors))


def generator_kwargs(**overrides):
    settings = dict(batch_size=4, expected_sr=SR, num_fft=FFT, num_hop=HOP, duration=1.0, cache_size=4,
                    num_workers=0, min_replacement_rate=2, seed=0)
    settings.update(overrides)
    return settings


def multiprocessing_helper(process):
    """multiprocessing's own helper processes (forkserver, resource tracker): direct children
    started with ``-c "from multiprocessing.<helper> import main..."``; workers forked by the
    forkserver inherit that command line but are not our direct children."""
    command = " ".join(process.cmdline())
    return process.ppid() == os.getpid() and ("multiprocessing.forkserver" in command or
                                             "multiprocessing.resource_tracker" in command)


def worker_children():
    """Live descendant processes of this test process, other than multiprocessing helpers."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not multiprocessing_helper(child):
                alive.append(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ignores_interrupts(pid):
    """True once the process ignores SIGINT and SIGTERM (Linux: the SigIgn mask in /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line.split()[1] for line in status if line.startswith("SigIgn:"))
    return all(int(mask, 16) & (1 << (number - 1)) for number in (signal.SIGINT, signal.SIGTERM))


class ExplodingSample:
    """Stands for a bug in the reading code: touching ``path`` raises inside the worker."""

    duration, sample_rate, channels = 2.0, SR, 1

    @property
    def path(self):
        raise ZeroDivisionError("exploding sample for the worker crash test")


# ----------------------------------------------------------------------------------------
# Reading audio and spectrogram helpers
# ----------------------------------------------------------------------------------------

def test_resampling_keeps_a_sines_frequency(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(1000.0, 2.0, 44100, channels=2), 44100)
    audio = Input.read_audio(path, SR)
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    spectrum = np.abs(Input.stft(audio, 512, 256)).mean(axis=1)
    assert abs(np.argmax(spectrum) * SR / 512 - 1000.0) <= SR / 512
    assert 0.25 < np.abs(audio).max() < 0.35  # amplitude kept (0.3), stereo averaged


def test_read_audio_clips_and_pads_sections(tmp_path):
    loud = np.full(SR, 1.5, np.float32)
    path = write_wav(tmp_path / "loud.wav", loud, SR)
    audio = Input.read_audio(path, SR, offset=-0.25, duration=1.0, padding_duration=0.25)
    assert audio.shape == (int(1.5 * SR),)
    assert np.all(audio[:SR // 2] == 0.0)  # before the file's start
    assert np.all(audio[SR // 2:SR] == 1.0)  # clipped
    assert np.all(audio[3 * SR // 2 - 1:] <= 1.0)


def test_random_section_reports_its_centre(tmp_path):
    audio = chirp(3.0, 22050)
    path = write_wav(tmp_path / "c.wav", audio, 22050)
    rng = np.random.default_rng(3)
    section, offset = Input.read_random_section(path, SR, True, duration=1.0, padding_duration=0.5, rng=rng)
    assert section.shape == (2 * SR,) and 0.0 <= offset <= 2.0
    centre = Input.read_audio(path, SR, offset=offset, duration=1.0)
    np.testing.assert_allclose(section[SR // 2:SR // 2 + SR], centre, atol=1e-5)


def test_section_reads_match_the_whole_file(tmp_path):
    """Seeking + resampling a section gives the samples of a whole-file read."""
    noise = (np.random.default_rng(0).standard_normal(3 * 44100) * 0.1).astype(np.float32)
    path = write_wav(tmp_path / "n.wav", noise, 44100)
    whole = Input.read_audio(path, SR)
    section = Input.read_audio(path, SR, offset=1.2, duration=0.5)
    start = int(round(1.2 * SR))
    np.testing.assert_allclose(section, whole[start:start + len(section)], atol=1e-5)


def test_audioread_reader_matches_soundfile(tmp_path):
    audio = sine(440.0, 0.5, SR, channels=2)
    path = write_wav(tmp_path / "pcm.wav", audio, SR, subtype="PCM_16")
    with soundfile.SoundFile(path) as handle:
        expected = Input._SoundFileReader(path, handle).read(-10, 1000)
    try:
        decoded = Input._AudioreadReader(path).read(-10, 1000)
    except Input.UnreadableAudioError as error:
        pytest.skip(f"no audioread backend for WAV here: {error}")
    assert decoded.shape == expected.shape == (1000, 2)
    np.testing.assert_allclose(decoded, expected, atol=1e-4)


def test_unreadable_file_error_names_the_path(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"not audio at all")
    with pytest.raises(Input.UnreadableAudioError, match="broken.wav"):
        Input.read_audio(str(path), SR)
    with pytest.raises(Input.UnreadableAudioError, match="does not exist"):
        Input.read_audio(str(tmp_path / "missing.wav"), SR)


def song_with_a_bad_voice_sample(folder, name, value=np.nan, sample_rate=SR, bad_seconds=0.25):
    """A 1 s chirp song whose voice file holds one non-finite sample at ``bad_seconds``."""
    song = chirp_song(folder, name, 1.0, sample_rate)
    audio = soundfile.read(song[2].path, dtype="float32")[0]
    audio[int(bad_seconds * sample_rate)] = value
    write_wav(song[2].path, audio, sample_rate)
    return song


@pytest.mark.parametrize("value, sample_rate", [(np.nan, SR), (np.inf, SR), (-np.inf, 44100)])
def test_non_finite_samples_are_refused_naming_the_file_and_the_time(tmp_path, value, sample_rate):
    voice = song_with_a_bad_voice_sample(tmp_path, "bad", value, sample_rate)[2].path
    for read in (lambda: Input.read_audio(voice, SR), lambda: Input.read_audio(voice, SR, offset=0.2, duration=0.1),
                 lambda: Input.check_file_finite(voice, block_seconds=0.1)):
        with pytest.raises(Input.NonFiniteAudioError, match=rf"bad_voice\.wav.*\(at 0\.250 s\) is {value}"):
            read()
    assert np.isfinite(Input.read_audio(voice, SR, offset=0.6, duration=0.3)).all()  # other spans read fine


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_non_finite_file_stops_the_batch_generator_instead_of_being_skipped(tmp_path, num_workers):
    good, bad = chirp_song(tmp_path, "good", 1.0), song_with_a_bad_voice_sample(tmp_path, "bad")
    with pytest.raises(Input.NonFiniteAudioError, match="bad_voice.wav"):
        with Input.PairedBatchGenerator([good, bad], (BINS, 12), (BINS, 12),
                                        **generator_kwargs(num_workers=num_workers)) as generator:
            for _ in range(50):
                generator.get_batch()


def test_validation_batches_refuse_a_non_finite_song(tmp_path):
    songs = [chirp_song(tmp_path, "good", 1.0), song_with_a_bad_voice_sample(tmp_path, "bad")]
    with pytest.raises(Input.NonFiniteAudioError, match="bad_voice.wav"):
        list(Input.validation_batches(songs, (BINS + 1, 18), (BINS, 8), 3, SR, True, FFT, HOP))


def test_stft_matches_librosa_and_round_trips_to_exact_length():
    import librosa

    audio = (np.random.default_rng(1).standard_normal(5001) * 0.2).astype(np.float32)
    spectrogram = Input.stft(audio, 512, 256)
    assert spectrogram.shape == (257, 1 + 5001 // 256)
    np.testing.assert_allclose(spectrogram, librosa.stft(audio, n_fft=512, hop_length=256), atol=1e-4)
    restored = Input.istft(np.abs(spectrogram), np.angle(spectrogram), 256, length=5001)
    assert restored.shape == (5001,) and restored.dtype == np.float32
    np.testing.assert_allclose(restored, audio, atol=1e-4)
    # Unit phasors are the same phase: 1 where the spectrogram is 0, as np.angle gives 0 there.
    spectrogram[:, :3] = 0.0
    phasors = Input.unit_phasors(spectrogram)
    assert phasors.dtype == np.complex64 and np.all(phasors[:, :3] == 1)
    np.testing.assert_allclose(np.abs(phasors), 1.0, rtol=1e-6)
    magnitude = np.abs(spectrogram) * 0.5
    np.testing.assert_allclose(Input.istft(magnitude, phasors, 256, 5001),
                               Input.istft(magnitude, np.angle(spectrogram), 256, 5001), atol=1e-6)


def test_whole_song_spectrogram_shapes(tmp_path):
    # How Evaluate separates a song: read it whole at the model's rate, STFT, istft with its phase.
    path = write_wav(tmp_path / "s.wav", chirp(1.3, 16000), 16000)
    audio = Input.read_audio(path, SR, mono_downmix=True)
    spectrogram = Input.stft(audio, 512, 256)
    magnitude, phase = np.abs(spectrogram), np.angle(spectrogram)
    assert audio.shape == (int(round(1.3 * SR)),)
    assert magnitude.shape == phase.shape == (257, 1 + len(audio) // 256)
    np.testing.assert_allclose(Input.istft(magnitude, phase, 256, len(audio)), audio, atol=1e-4)


def test_normalise_pad_and_crop_numpy():
    magnitude = np.random.default_rng(2).random((2, 257, 10, 1)).astype(np.float32)
    np.testing.assert_allclose(Input.denormalise(Input.normalise(magnitude)), magnitude, atol=1e-6)
    padded = Input.pad_freqs(magnitude, 350)
    assert padded.shape == (2, 350, 10, 1)
    assert not padded[:, :46].any() and not padded[:, 46 + 257:].any()  # 46 before, 47 after
    np.testing.assert_array_equal(Input.unpad_freqs(padded, 257), magnitude)
    assert Input.pad_freqs(magnitude[0, :, :, 0], 258).shape == (258, 10)
    assert Input.pad_freqs(magnitude[0, :, :, 0], 258)[-1].sum() == 0  # odd row at the end
    cropped = Input.crop(padded, [2, 258, 6, 1])
    np.testing.assert_array_equal(cropped, padded[:, 46:304, 2:8])
    np.testing.assert_array_equal(Input.crop(padded, (258, 6)), cropped)
    with pytest.raises(ValueError):
        Input.crop(padded, (400, 6))


def test_normalise_pad_and_crop_tensorflow():
    tf = pytest.importorskip("tensorflow")
    magnitude = np.random.default_rng(2).random((3, 257, 10, 1)).astype(np.float32)
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, 257, 10, 1])
        normalised = Input.normalise(placeholder)
        restored = Input.denormalise(normalised)
        padded = Input.pad_freqs(placeholder, 350)
        cropped = Input.crop(padded, [None, 258, 6, 1])
        assert cropped.shape.as_list() == [None, 258, 6, 1]
        with tf.compat.v1.Session() as session:
            values = session.run([normalised, restored, padded, cropped], {placeholder: magnitude})
    np.testing.assert_allclose(values[0], np.log1p(magnitude), rtol=1e-6)
    np.testing.assert_allclose(values[1], magnitude, atol=1e-6)
    np.testing.assert_array_equal(values[2], Input.pad_freqs(magnitude, 350))
    np.testing.assert_array_equal(values[3], Input.crop(Input.pad_freqs(magnitude, 350), (258, 6)))


# ----------------------------------------------------------------------------------------
# Batch generators (reading in the calling process)
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_fft, input_shape, output_shape, batch_size, num_sources", [
    (256, (140, 30), (130, 10), 3, 2),
    (512, (270, 24), (258, 8), 2, 1),
    (128, (65, 12), (65, 12), 5, 3),
])
def test_paired_batch_shapes(tmp_path, num_fft, input_shape, output_shape, batch_size, num_sources):
    audio = chirp(1.5, SR)
    songs = [tuple(make_sample(tmp_path / f"{song}_{k}.wav", audio * (k + 1) / 4) for k in range(num_sources + 1))
             for song in range(2)]
    kwargs = generator_kwargs(batch_size=batch_size, num_fft=num_fft, num_hop=num_fft // 2)
    with Input.PairedBatchGenerator(songs, input_shape, output_shape, **kwargs) as generator:
        batch = generator.get_batch()
    bins = num_fft // 2 + 1
    assert len(batch) == 1 + num_sources
    assert batch[0].shape == (batch_size,) + input_shape + (1,)
    for source in batch[1:]:
        assert source.shape == (batch_size,) + output_shape + (1,)
    for array in batch:
        before = (array.shape[1] - bins) // 2
        assert array.dtype == np.float32 and array.min() >= 0.0 and array.max() > 0.0
        assert not array[:, :before].any() and not array[:, before + bins:].any()  # frequency padding


@pytest.mark.parametrize("shape, context, gain", [((130, 30), 10, None), ((129, 7), 0, (0.2, 1.2))])
def test_single_batch_shapes(tmp_path, shape, context, gain):
    samples = [make_sample(tmp_path / f"{i}.wav", chirp(1.2, SR)) for i in range(3)]
    kwargs = generator_kwargs(batch_size=6)
    with Input.SingleSourceBatchGenerator(samples, shape, context_frames=context, random_gain=gain,
                                          **kwargs) as generator:
        batch = generator.get_batch()
    assert batch.shape == (6,) + shape + (1,) and batch.dtype == np.float32
    assert not batch[:, BINS:].any()


def test_random_gain_range(tmp_path):
    samples = [make_sample(tmp_path / "tone.wav", sine(1000.0, 3.0, SR))]  # same magnitude everywhere
    kwargs = generator_kwargs(batch_size=32, cache_size=2)
    with Input.SingleSourceBatchGenerator(samples, (BINS, 8), **kwargs) as plain:
        reference = plain.get_batch().max(axis=(1, 2, 3))
    with Input.SingleSourceBatchGenerator(samples, (BINS, 8), random_gain=(0.2, 1.2), **kwargs) as gained:
        gains = gained.get_batch().max(axis=(1, 2, 3)) / reference.max()
    assert np.allclose(reference, reference.max(), rtol=1e-3)
    assert gains.min() >= 0.2 - 1e-3 and gains.max() <= 1.2 + 1e-3 and gains.std() > 0.1


def check_paired_alignment(batch, songs, output_shape, input_shape, num_fft=FFT, num_hop=HOP):
    """Every mixture window's centre equals its accompaniment window, and the whole mixture
    window equals the song's spectrogram around it, with zeros past the song's ends."""
    context = (input_shape[1] - output_shape[1]) // 2
    whole = [whole_song_magnitudes(song[1], num_fft, num_hop) for song in songs]
    mixture = Input.unpad_freqs(batch[0], num_fft // 2 + 1)[..., 0]
    accompaniment = Input.unpad_freqs(batch[1], num_fft // 2 + 1)[..., 0]
    edges = set()
    for mix_window, acc_window in zip(mixture, accompaniment):
        np.testing.assert_allclose(mix_window[:, context:context + output_shape[1]], acc_window, atol=1e-4)
        song, (start, error) = min(((s, find_frame(acc_window, w)) for s, w in enumerate(whole)),
                                   key=lambda found: found[1][1])
        assert error < 1e-3, "source window is not a window of any song"
        padded = np.pad(whole[song], [(0, 0), (context, context + output_shape[1])])
        np.testing.assert_allclose(mix_window, padded[:, start:start + input_shape[1]], atol=1e-3)
        if start < context:
            assert not mix_window[:, :context - start - 1].any()  # frames wholly before the start
            edges.add("start")
        if start + output_shape[1] + context > whole[song].shape[1]:
            edges.add("end")
    return edges


@pytest.mark.parametrize("num_fft, num_hop", [(FFT, HOP), (512, 128)])
def test_paired_windows_are_aligned_and_padded_at_song_edges(tmp_path, num_fft, num_hop):
    # A 0.6 s song (39 frames at hop 128) is shorter than a section: every window touches an edge.
    songs = [chirp_song(tmp_path, "short", 0.6, sample_rate=22050), chirp_song(tmp_path, "long", 3.0)]
    bins = num_fft // 2 + 1
    input_shape, output_shape = (bins + 3, 36), (bins, 16)
    kwargs = generator_kwargs(batch_size=16, cache_size=6, duration=1.0, num_fft=num_fft, num_hop=num_hop)
    edges = set()
    with Input.PairedBatchGenerator(songs, input_shape, output_shape, **kwargs) as generator:
        for _ in range(3):
            batch = generator.get_batch()
            edges |= check_paired_alignment(batch, songs, output_shape, input_shape, num_fft, num_hop)
    assert edges == {"start", "end"}


def test_silent_sources_give_zero_magnitudes(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0, silent_voice=True)]
    silent_file = make_sample(tmp_path / "silence.wav", np.zeros(SR, np.float32))
    songs.append((songs[0][0], songs[0][1], silent_file))
    with Input.PairedBatchGenerator(songs, (BINS, 12), (BINS, 12), **generator_kwargs(batch_size=8)) as generator:
        mixture, accompaniment, voice = generator.get_batch()
    assert voice.shape == accompaniment.shape == (8, BINS, 12, 1)
    assert not voice.any() and accompaniment.any()
    with Input.SingleSourceBatchGenerator([silent_file, None], (BINS, 5), **generator_kwargs()) as generator:
        assert not generator.get_batch().any()


def test_inline_generator_is_deterministic_and_keeps_the_replacement_rate(tmp_path):
    songs = [chirp_song(tmp_path, str(i), 2.0) for i in range(3)]

    def batches(seed):
        with Input.PairedBatchGenerator(songs, (BINS, 20), (BINS, 10), **generator_kwargs(seed=seed)) as generator:
            drawn = [generator.get_batch() for _ in range(5)]
            return drawn, generator.stats()

    first, stats = batches(7)
    second, _ = batches(7)
    other, _ = batches(8)
    for a, b in zip(first, second):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert stats["batches"] == 5 and stats["items_replaced"] == 10 and stats["replacement_rate"] == 2.0
    assert stats["items_read"] == 4 + 10


def magnitude_store(songs, folder, num_fft=FFT, num_hop=HOP):
    samples = [sample for song in songs for sample in song if not Input.is_silent(sample)]
    return AudioCache.magnitude_store({"train_sup": samples}, str(folder), SR, num_fft, num_hop, num_workers=0)


def test_batches_from_the_magnitude_store_equal_batches_computed_from_audio(tmp_path):
    # A short song (every window touches an edge), a longer one, and a song without voice.
    songs = [chirp_song(tmp_path, "short", 0.6), chirp_song(tmp_path, "long", 3.0),
             chirp_song(tmp_path, "instrumental", 2.0, silent_voice=True)]
    store = magnitude_store(songs, tmp_path / "cache")
    mixtures = [song[0] for song in songs]

    def draw(magnitudes):
        kwargs = generator_kwargs(batch_size=16, cache_size=6, seed=3, magnitudes=magnitudes)
        with Input.PairedBatchGenerator(songs, (BINS + 3, 36), (BINS, 16), **kwargs) as paired, \
                Input.SingleSourceBatchGenerator(mixtures, (BINS, 36), context_frames=10, **kwargs) as single:
            return [paired.get_batch() for _ in range(3)], [single.get_batch() for _ in range(3)]

    (computed_paired, computed_single), (read_paired, read_single) = draw(None), draw(store)
    for computed, read in zip(computed_paired + computed_single, read_paired + read_single):
        for x, y in zip(*(batch if isinstance(batch, list) else [batch] for batch in (computed, read))):
            assert x.any()
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)


def test_workers_read_from_the_store_and_batches_stay_put(tmp_path):
    songs = [chirp_song(tmp_path, str(i), 2.0) for i in range(2)]
    store = magnitude_store(songs, tmp_path / "cache")
    kwargs = generator_kwargs(num_workers=2, magnitudes=store)
    with Input.PairedBatchGenerator(songs, (BINS, 20), (BINS, 10), **kwargs) as generator:
        first = generator.get_batch()
        kept = [array.copy() for array in first]
        for _ in range(10):  # the workers overwrite freed slots meanwhile
            generator.get_batch()
        check_paired_alignment(first[:2], songs, (BINS, 10), (BINS, 20))
        assert generator.stats()["items_replaced"] >= 2 * 11
    for array, copy in zip(first, kept):  # a batch is the caller's, not a view of the cache
        np.testing.assert_array_equal(array, copy)


def test_a_store_of_other_stft_settings_is_rejected(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0)]
    store = magnitude_store(songs, tmp_path / "cache", num_fft=2 * FFT)
    with pytest.raises(ValueError, match="frequency bins.*num_fft"):
        Input.PairedBatchGenerator(songs, (2 * BINS, 20), (BINS, 10), **generator_kwargs(magnitudes=store))


def test_unreadable_file_is_skipped_with_one_warning(tmp_path, caplog):
    good = chirp_song(tmp_path, "good", 1.0)
    bad = chirp_song(tmp_path, "bad", 1.0)
    with open(bad[2].path, "wb") as handle:  # corrupted after the dataset was built
        handle.write(b"garbage" * 100)
    with caplog.at_level("WARNING", logger="Input"):
        with Input.PairedBatchGenerator([good, bad], (BINS, 12), (BINS, 12), **generator_kwargs()) as generator:
            for _ in range(10):
                batch = generator.get_batch()
    warnings = [record for record in caplog.records if record.name == "Input" and record.levelname == "WARNING"]
    assert len(warnings) == 1 and bad[2].path in warnings[0].getMessage()
    assert generator.stats()["unreadable_entries"] == 1
    assert batch[2].any()  # only the good song (with a voice) is left


def test_all_unreadable_files_raise(tmp_path, caplog):
    bad = make_sample(tmp_path / "bad.wav", chirp(1.0, SR))
    os.remove(bad.path)
    generator = Input.SingleSourceBatchGenerator([bad, bad], (BINS, 5), **generator_kwargs())
    with pytest.raises(RuntimeError, match="None of the 2"):
        generator.get_batch()
    with pytest.raises(RuntimeError, match="None of the 1"):
        with Input.SingleSourceBatchGenerator([bad], (BINS, 5), **generator_kwargs(num_workers=1)):
            pass
    assert sum(bad.path in record.getMessage() for record in caplog.records) == 2  # once per generator


def test_bad_settings_are_rejected(tmp_path):
    song = chirp_song(tmp_path, "a", 1.0)
    with pytest.raises(ValueError, match="even"):
        Input.PairedBatchGenerator([song], (BINS, 21), (BINS, 10), **generator_kwargs())
    with pytest.raises(ValueError, match="frequency bins"):
        Input.PairedBatchGenerator([song], (100, 20), (BINS, 10), **generator_kwargs())
    with pytest.raises(ValueError, match="empty"):
        Input.SingleSourceBatchGenerator([], (BINS, 5), **generator_kwargs())
    with pytest.raises(ValueError, match="mono_downmix"):
        Input.SingleSourceBatchGenerator([song[0]], (BINS, 5), **generator_kwargs(mono_downmix=False))


def test_validation_batches_cover_every_song(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0), chirp_song(tmp_path, "b", 0.45, silent_voice=True)]
    input_shape, output_shape = (BINS + 1, 18), (BINS, 8)
    batches = list(Input.validation_batches(songs, input_shape, output_shape, 3, SR, True, FFT, HOP))
    frames = [whole_song_magnitudes(song[0]).shape[1] for song in songs]  # 65 and 29
    windows = [int(np.ceil(n / 8)) for n in frames]
    assert [len(batch[0]) for batch in batches] == [3] * (sum(windows) // 3) + ([sum(windows) % 3] * (sum(windows) % 3 > 0))
    mixture, accompaniment, voice = (np.concatenate(parts) for parts in zip(*batches))
    assert mixture.shape[1:] == input_shape + (1,) and voice.shape[1:] == output_shape + (1,)
    np.testing.assert_allclose(mixture[:, :BINS, 5:13], accompaniment[:, :BINS, :], atol=1e-5)
    assert not mixture[0, :, :5].any() and not mixture[windows[0], :, :5].any()  # context before each start
    for song, n, first, count in zip(songs, frames, [0, windows[0]], windows):
        covered = np.concatenate(list(accompaniment[first:first + count, :BINS, :, 0]), axis=1)
        np.testing.assert_allclose(covered[:, :n], whole_song_magnitudes(song[1]), atol=1e-5)
        assert not covered[:, n:].any()  # zero padding past the end
    assert not voice[windows[0]:].any()


# ----------------------------------------------------------------------------------------
# Worker processes: failures and shutdown
# ----------------------------------------------------------------------------------------

def test_workers_fill_the_cache_and_leave_no_process_behind(tmp_path):
    songs = [chirp_song(tmp_path, str(i), 2.0) for i in range(2)]
    before = set(worker_children())
    generator = Input.PairedBatchGenerator(songs, (BINS, 20), (BINS, 10), **generator_kwargs(num_workers=2))
    with generator:
        pids = generator.worker_pids()
        assert len(pids) == 2 and set(pids) <= set(worker_children())
        for _ in range(5):
            mixture, accompaniment, voice = generator.get_batch()
        check_paired_alignment([mixture, accompaniment], songs, (BINS, 10), (BINS, 20))
        stats = generator.stats()
    assert stats["items_replaced"] >= 2 * 5 and stats["batches"] == 5
    assert all(gone(pid) for pid in pids)
    assert set(worker_children()) <= before

    with pytest.raises(ValueError, match="trainer failed"):
        with generator:  # restarts with fresh workers
            pids = generator.worker_pids()
            generator.get_batch()
            raise ValueError("trainer failed")
    assert pids and all(gone(pid) for pid in pids)

    generator.start()
    pids = generator.worker_pids()
    with pytest.raises(KeyboardInterrupt):
        with generator:
            if os.path.exists(f"/proc/{pids[0]}/status"):  # a worker still importing would die of it
                assert wait_until(lambda: all(ignores_interrupts(pid) for pid in pids), 10)
            for pid in pids:  # as a terminal's Ctrl-C (or a scheduler): the whole process group is signalled
                os.kill(pid, signal.SIGINT)
                os.kill(pid, signal.SIGTERM)
            time.sleep(0.3)
            assert generator.get_batch()[0].shape == (4, BINS, 20, 1)  # workers ignore both
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # interrupted long before
    assert all(gone(pid) for pid in pids)
    assert set(worker_children()) <= before


def test_crashing_worker_makes_get_batch_raise(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0), (ExplodingSample(), ExplodingSample(), ExplodingSample())]
    generator = Input.PairedBatchGenerator(songs, (BINS, 12), (BINS, 12), **generator_kwargs(num_workers=1))
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        with generator:
            for _ in range(200):
                generator.get_batch()
    assert time.monotonic() - began < 20
    assert not generator.worker_pids()


def test_killed_worker_makes_get_batch_raise(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0)]
    with Input.PairedBatchGenerator(songs, (BINS, 12), (BINS, 12), **generator_kwargs(num_workers=1)) as generator:
        generator.get_batch()
        pid = generator.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="SIGKILL"):
            for _ in range(1000):
                generator.get_batch()
        assert time.monotonic() - began < 10


SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
with open({log!r}, "a") as log:  # a worker re-running this script would add a line
    log.write("imported\\n")
import Input
from Sample import Sample

if __name__ == "__main__":
    sample = Sample.from_path({path!r})
    generator = Input.SingleSourceBatchGenerator([sample], ({bins}, 5), batch_size=2, num_fft={fft}, num_hop={hop},
                                                 duration=0.5, cache_size=2, num_workers=2, seed=0)
    generator.get_batch()
    print(" ".join(map(str, generator.worker_pids())), flush=True)
    {ending}
"""


@pytest.mark.parametrize("ending, kill", [("pass", False), ("time.sleep(60)", True)])
def test_workers_end_with_their_parent(tmp_path, ending, kill):
    """No stop() at all: workers end at interpreter exit, or by themselves if the parent is
    killed; and they never re-run the main script (which may import TensorFlow)."""
    sample = make_sample(tmp_path / "a.wav", chirp(1.0, SR))
    log = tmp_path / "imports.log"
    script = tmp_path / "main_script.py"
    script.write_text(SCRIPT.format(root=ROOT, log=str(log), path=sample.path, bins=BINS, fft=FFT, hop=HOP,
                                    ending=ending))
    # stderr is captured: after a SIGKILL the resource tracker warns about the semaphores it frees.
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        pids = [int(pid) for pid in process.stdout.readline().split()]
        assert len(pids) == 2
        if kill:
            process.kill()
        process.wait(timeout=20)
        assert wait_until(lambda: all(gone(pid) for pid in pids), 10)
        assert log.read_text() == "imported\n"
    finally:
        process.kill()
        process.communicate()
