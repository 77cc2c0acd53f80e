"""Tests of AudioCache.py: the dataset's audio converted once to the model's rate and channels.

Sources are short 44.1 kHz stereo (and 22.05 kHz mono) files; the copies must be what
Input.read_audio computes from the sources, and be reused until a source changes.
"""

import dataclasses
import os
import re

import numpy as np
import pytest
import soundfile

import Input
from pipeline import AudioCache
from Sample import Sample

from conftest import sine, write_wav

SR = 8192


@dataclasses.dataclass(frozen=True)
class SilentSource:
    """A placeholder for a source a song lacks (see Input.is_silent)."""

    silent: bool = True


def stereo_tone(frequency, seconds, sample_rate=44100):
    """Stereo test signal with different channels, so that down-mixing matters."""
    left = sine(frequency, seconds, sample_rate, amplitude=0.5)
    right = sine(2.5 * frequency, seconds, sample_rate, amplitude=0.3)
    return np.stack([left, right], axis=1)


def make_sample(path, audio, sample_rate=44100, database="Demo", song=""):
    return Sample.from_path(write_wav(path, audio, sample_rate), database=database, song=song or os.path.basename(path))


def small_dataset(folder):
    """A dataset dict whose voice of song 1 is used three times and whose silent voices vary."""
    song1 = (
        make_sample(folder / "song1" / "mixture.wav", stereo_tone(220, 1.0), song="Song 1"),
        make_sample(folder / "song1" / "accompaniment.wav", stereo_tone(110, 1.0), song="Song 1"),
        make_sample(folder / "song1" / "vocals.wav", stereo_tone(440, 1.0), song="Song 1"),
    )
    song2 = (
        make_sample(folder / "song2" / "mixture.wav", sine(330, 0.7, 22050), 22050, "Other", "Song 2"),
        make_sample(folder / "song2" / "accompaniment.wav", sine(165, 0.7, 22050), 22050, "Other", "Song 2"),
        None,
    )
    song3 = (
        make_sample(folder / "song3" / "mixture.wav", stereo_tone(550, 0.5), song="Song 3"),
        make_sample(folder / "song3" / "accompaniment.wav", stereo_tone(275, 0.5), song="Song 3"),
        SilentSource(),
    )
    return {
        "train_sup": [song1, song2],
        "train_unsup": [[song3[0]], [song3[1]], [song1[2]]],
        "valid": [song1],
        "test": [song3],
    }


def samples_of(dataset):
    for key in ("train_sup", "valid", "test"):
        for song in dataset[key]:
            yield from song
    for samples in dataset["train_unsup"]:
        yield from samples


def paths_of(dataset):
    return [sample.path for sample in samples_of(dataset) if not Input.is_silent(sample)]


def copy_folder(cache_dir):
    return os.path.join(str(cache_dir), "model_rate", f"{SR}Hz_mono")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(original dataset, its model-rate copy, cache dir), converted by two worker processes."""
    folder = tmp_path_factory.mktemp("audio_cache")
    original = small_dataset(folder / "sources")
    cache_dir = folder / "cache"
    return original, AudioCache.model_rate_dataset(original, str(cache_dir), SR, True, num_workers=2), cache_dir


def test_copies_are_mono_at_the_model_rate_with_the_same_duration(converted):
    original, copied, cache_dir = converted
    for source, copy in zip(samples_of(original), samples_of(copied)):
        if Input.is_silent(source):
            continue
        info = soundfile.info(copy.path)
        assert (copy.sample_rate, copy.channels, info.samplerate, info.channels) == (SR, 1, SR, 1)
        assert info.subtype == "FLOAT"
        assert abs(copy.duration - source.duration) <= 1.0 / SR
        assert copy.duration == info.frames / SR
        assert os.path.dirname(copy.path) == copy_folder(cache_dir)


def test_copies_hold_what_read_audio_computes_from_the_sources(converted):
    original, copied, _ = converted
    for source, copy in zip(
        original["train_sup"][0] + original["train_sup"][1][:2], copied["train_sup"][0] + copied["train_sup"][1][:2]
    ):
        expected = Input.read_audio(source.path, SR, mono_downmix=True)
        stored, rate = soundfile.read(copy.path, dtype="float32")
        assert rate == SR and stored.shape == expected.shape
        np.testing.assert_allclose(stored, expected, atol=1e-5)
        # Reading the copy at the model rate gives the same audio (no resampling on the way).
        np.testing.assert_allclose(Input.read_audio(copy.path, SR, mono_downmix=True), expected, atol=1e-5)


def test_structure_database_song_and_silent_placeholders_are_kept(converted):
    original, copied, _ = converted
    assert list(copied) == list(original)
    assert [len(copied[key]) for key in ("train_sup", "valid", "test")] == [2, 1, 1]
    assert all(isinstance(song, tuple) for key in ("train_sup", "valid", "test") for song in copied[key])
    assert isinstance(copied["train_unsup"], list) and all(
        isinstance(samples, list) for samples in copied["train_unsup"]
    )
    assert [len(samples) for samples in copied["train_unsup"]] == [1, 1, 1]
    for source, copy in zip(samples_of(original), samples_of(copied)):
        if Input.is_silent(source):
            assert copy is source
        else:
            assert (copy.database, copy.song) == (source.database, source.song)
            assert copy.path != source.path


def test_a_file_used_in_several_partitions_is_converted_once(converted):
    original, copied, cache_dir = converted
    voice = copied["train_sup"][0][2]
    assert copied["valid"][0][2] == voice and copied["train_unsup"][2][0].path == voice.path
    assert len(os.listdir(copy_folder(cache_dir))) == len(set(paths_of(original))) == 7


def test_second_call_reuses_the_copies_without_starting_a_pool(converted, monkeypatch):
    original, copied, cache_dir = converted
    times = {path: os.stat(path).st_mtime_ns for path in paths_of(copied)}

    def no_pool(*args, **kwargs):
        raise AssertionError("a conversion pool was started although every copy is current")

    monkeypatch.setattr(AudioCache, "ProcessPoolExecutor", no_pool)
    again = AudioCache.model_rate_dataset(original, str(cache_dir), SR, True, num_workers=2)
    assert again == copied
    assert {path: os.stat(path).st_mtime_ns for path in times} == times


def test_a_changed_source_is_converted_again_and_its_stale_copy_removed(tmp_path):
    original = small_dataset(tmp_path / "sources")
    cache_dir = str(tmp_path / "cache")
    first = AudioCache.model_rate_dataset(original, cache_dir, SR, True, num_workers=1)
    changed = original["train_sup"][0][0]
    write_wav(changed.path, stereo_tone(880, 1.0))
    status = os.stat(changed.path)
    os.utime(changed.path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # a new mtime for sure

    second = AudioCache.model_rate_dataset(original, cache_dir, SR, True, num_workers=1)
    old_copy, new_copy = first["train_sup"][0][0].path, second["train_sup"][0][0].path
    assert new_copy != old_copy and not os.path.exists(old_copy)
    np.testing.assert_allclose(
        soundfile.read(new_copy, dtype="float32")[0], Input.read_audio(changed.path, SR, mono_downmix=True), atol=1e-5
    )
    assert second["valid"][0][0].path == new_copy
    assert [path for path in paths_of(second) if path != new_copy] == [
        path for path in paths_of(first) if path != old_copy
    ]
    assert len(os.listdir(copy_folder(cache_dir))) == 7


def test_without_downmix_the_channels_are_kept(tmp_path):
    stereo = make_sample(tmp_path / "stereo.wav", stereo_tone(220, 0.5))
    dataset = {"train_sup": [(stereo, stereo, None)], "train_unsup": [[], [], []], "valid": [], "test": []}
    copy = AudioCache.model_rate_dataset(dataset, str(tmp_path / "cache"), SR, False, num_workers=0)["train_sup"][0][0]
    assert (copy.sample_rate, copy.channels) == (SR, 2)
    assert os.path.dirname(copy.path) == os.path.join(str(tmp_path / "cache"), "model_rate", f"{SR}Hz_stereo")
    np.testing.assert_allclose(
        soundfile.read(copy.path, dtype="float32")[0].T,
        Input.read_audio(stereo.path, SR, mono_downmix=False),
        atol=1e-5,
    )


def test_an_unreadable_source_is_named(tmp_path):
    good = make_sample(tmp_path / "good.wav", stereo_tone(220, 0.5))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt this is not audio" * 10)
    bad = Sample(path=str(corrupt), sample_rate=44100, channels=2, duration=1.0, database="Demo", song="Broken")
    dataset = {"train_sup": [(good, bad, None)], "train_unsup": [[], [], []], "valid": [], "test": []}
    # Converted in a worker process: the error must survive the trip back.
    with pytest.raises(Input.UnreadableAudioError, match=re.escape(str(corrupt))):
        AudioCache.model_rate_dataset(dataset, str(tmp_path / "cache"), SR, True, num_workers=2)

    missing = dataclasses.replace(bad, path=str(tmp_path / "missing.wav"))
    dataset["train_sup"] = [(good, missing, None)]
    with pytest.raises(Input.UnreadableAudioError, match=re.escape(missing.path)):
        AudioCache.model_rate_dataset(dataset, str(tmp_path / "cache"), SR, True, num_workers=2)


@pytest.mark.parametrize(
    "dataset, settings, message",
    [
        ({"train_sup": [("mixture.wav", None, None)]}, {}, r"dataset\['train_sup'\]\[0\]\[0\] is a str"),
        ({}, {"expected_sr": 0}, "expected_sr"),
        ({}, {"num_workers": -1}, "num_workers"),
    ],
)
def test_bad_arguments_are_named(tmp_path, dataset, settings, message):
    arguments = dict(dict(cache_dir=str(tmp_path), expected_sr=SR, mono_downmix=True), **settings)
    with pytest.raises(ValueError, match=message):
        AudioCache.model_rate_dataset(dataset, **arguments)


# ----------------------------------------------------------------------------------------
# Magnitude spectrograms
# ----------------------------------------------------------------------------------------

FFT, HOP = 256, 128
BINS = FFT // 2 + 1


def training_files(dataset):
    """The partitions the batch generators read (valid and test are read whole, as audio)."""
    return {"train_sup": dataset["train_sup"], "train_unsup": dataset["train_unsup"], "valid": [], "test": []}


@pytest.fixture(scope="module")
def stored(converted):
    """(model-rate dataset, its magnitude store, cache dir), computed by two worker processes."""
    _, copied, cache_dir = converted
    return (
        copied,
        AudioCache.magnitude_store(training_files(copied), str(cache_dir), SR, FFT, HOP, num_workers=2),
        cache_dir,
    )


def whole_magnitudes(path):
    return np.abs(Input.stft(Input.read_audio(path, SR, mono_downmix=True), FFT, HOP))


def test_the_store_holds_every_training_files_whole_spectrogram(stored):
    copied, store, cache_dir = stored
    paths = set(paths_of(training_files(copied)))
    folder = AudioCache.magnitude_folder(str(cache_dir), SR, FFT, HOP)
    assert len(store) == len(paths) == len(os.listdir(folder)) == 7
    for path in paths:
        assert path in store
        expected = whole_magnitudes(path)
        assert store.frames(path) == expected.shape[1]
        out = np.full((BINS, expected.shape[1]), np.nan, np.float32)
        np.testing.assert_array_equal(store.read_frames(path, 0, out), expected)
    assert str(cache_dir / "other.wav") not in store


def test_spans_past_the_ends_are_zeros(stored):
    copied, store, _ = stored
    path = copied["train_sup"][1][0].path  # 0.7 s: 45 frames
    expected = whole_magnitudes(path)
    frames = expected.shape[1]
    padded = np.pad(expected, [(0, 0), (30, 30)])
    for first, count in [(-30, 20), (-5, 12), (10, 7), (frames - 4, 9), (-30, frames + 60), (frames + 3, 5)]:
        out = np.full((BINS, count), np.nan, np.float32)
        np.testing.assert_array_equal(store.read_frames(path, first, out), padded[:, first + 30 : first + 30 + count])
    buffer = np.empty(BINS * 12, np.float32)
    out = np.empty((BINS, 12), np.float32)
    np.testing.assert_array_equal(store.read_frames(path, 3, out, buffer), expected[:, 3:15])


def test_the_store_travels_to_worker_processes_intact(stored):
    import pickle

    copied, store, _ = stored
    path = copied["train_sup"][0][0].path
    again = pickle.loads(pickle.dumps(store))
    out, out_again = np.empty((BINS, 9), np.float32), np.empty((BINS, 9), np.float32)
    np.testing.assert_array_equal(store.read_frames(path, 2, out), again.read_frames(path, 2, out_again))
    assert len(again) == len(store) and again.bins == BINS


def test_a_second_store_call_reuses_the_spectrograms(stored, monkeypatch):
    copied, store, cache_dir = stored

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started although every spectrogram is current")

    monkeypatch.setattr(AudioCache, "ProcessPoolExecutor", no_pool)
    again = AudioCache.magnitude_store(training_files(copied), str(cache_dir), SR, FFT, HOP, num_workers=2)
    path = copied["train_sup"][0][2].path
    assert again.frames(path) == store.frames(path) and len(again) == len(store)


def test_damaged_spectrogram_files_are_named(tmp_path):
    sample = make_sample(tmp_path / "a.wav", stereo_tone(220, 0.5))
    dataset = {"train_sup": [(sample, None, None)]}
    store = AudioCache.magnitude_store(dataset, str(tmp_path / "cache"), SR, FFT, HOP, num_workers=0)
    (target,) = glob_npy(tmp_path / "cache")
    out = np.empty((BINS, 8), np.float32)
    with open(target, "r+b") as handle:  # cut the data short: the header still promises all frames
        handle.truncate(os.path.getsize(target) - 4 * BINS)
    with pytest.raises(Input.UnreadableAudioError, match=re.escape(target) + ".*truncated"):
        AudioCache.magnitude_store(dataset, str(tmp_path / "cache"), SR, FFT, HOP, num_workers=0).read_frames(
            sample.path, store.frames(sample.path) - 4, out
        )
    np.save(target, np.zeros((10, BINS + 1), np.float32))  # np.save keeps the name: a wrong layout
    with pytest.raises(Input.UnreadableAudioError, match=re.escape(target) + ".*expected float32"):
        AudioCache.magnitude_store(dataset, str(tmp_path / "cache"), SR, FFT, HOP).read_frames(sample.path, 0, out)
    os.remove(target)
    with pytest.raises(Input.UnreadableAudioError, match=re.escape(target)):
        store.read_frames(sample.path, 0, out)  # deleted under a running store


def glob_npy(folder):
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names if name.endswith(".npy")
    )


@pytest.mark.parametrize("settings, message", [({"num_fft": 0}, "num_fft"), ({"num_hop": 2.5}, "num_hop")])
def test_bad_stft_settings_are_named(tmp_path, settings, message):
    arguments = dict(dict(cache_dir=str(tmp_path), expected_sr=SR, num_fft=FFT, num_hop=HOP), **settings)
    with pytest.raises(ValueError, match=message):
        AudioCache.magnitude_store({}, **arguments)


def with_a_bad_sample(path, seconds=0.25, value=np.nan):
    audio, rate = soundfile.read(path, dtype="float32")
    audio[int(seconds * rate)] = value
    write_wav(path, audio, rate)


def test_non_finite_source_samples_are_named_by_the_copies_and_the_spectrogram_store(tmp_path):
    good = make_sample(tmp_path / "good.wav", stereo_tone(220, 0.5))
    bad = make_sample(tmp_path / "bad.wav", stereo_tone(330, 0.5))
    with_a_bad_sample(bad.path)
    dataset = {"train_sup": [(good, bad, None)], "train_unsup": [[], [], []], "valid": [], "test": []}
    for convert in (
        lambda: AudioCache.model_rate_dataset(dataset, str(tmp_path / "cache"), SR, True, num_workers=2),
        lambda: AudioCache.magnitude_store(dataset, str(tmp_path / "cache"), SR, FFT, HOP, num_workers=0),
    ):
        with pytest.raises(Input.NonFiniteAudioError, match=re.escape(bad.path) + r".*\(at 0\.250 s\) is nan"):
            convert()
    assert not [path for path in glob_npy(tmp_path / "cache") if "bad" in path]  # nothing half-made is kept


def test_a_stored_spectrogram_with_non_finite_values_is_named(tmp_path):
    # E.g. made from a model-rate copy that an older version wrote without checking.
    sample = make_sample(tmp_path / "a.wav", stereo_tone(220, 0.5))
    store = AudioCache.magnitude_store(
        {"train_sup": [(sample, None, None)]}, str(tmp_path / "cache"), SR, FFT, HOP, num_workers=0
    )
    (target,) = glob_npy(tmp_path / "cache")
    magnitudes = np.load(target)
    magnitudes[16, 3] = np.inf
    np.save(target, magnitudes)
    out = np.empty((BINS, 8), np.float32)
    store.read_frames(sample.path, 0, out)  # frames 0-7 are fine
    with pytest.raises(Input.NonFiniteAudioError, match=re.escape(target) + r": frame 16 \(at 0\.250 s\) is inf"):
        store.read_frames(sample.path, 12, out)
