"""BatchGenerators.py: shapes, alignment, gains, replacement rate, the magnitude store and the
whole-song validation batches, reading in the calling process (``num_workers=0``) with tiny shapes."""

import numpy as np
import pytest

import Input
from pipeline import BatchGenerators

from conftest import sine
from songs import (
    BINS,
    FFT,
    HOP,
    SR,
    check_paired_alignment,
    chirp,
    chirp_song,
    generator_kwargs,
    magnitude_store,
    make_sample,
    song_with_a_bad_voice_sample,
    whole_song_magnitudes,
)


def test_validation_batches_refuse_a_non_finite_song(tmp_path):
    songs = [chirp_song(tmp_path, "good", 1.0), song_with_a_bad_voice_sample(tmp_path, "bad")]
    with pytest.raises(Input.NonFiniteAudioError, match="bad_voice.wav"):
        list(BatchGenerators.validation_batches(songs, (BINS + 1, 18), (BINS, 8), 3, SR, True, FFT, HOP))


@pytest.mark.parametrize(
    "num_fft, input_shape, output_shape, batch_size, num_sources",
    [
        (256, (140, 30), (130, 10), 3, 2),
        (512, (270, 24), (258, 8), 2, 1),
        (128, (65, 12), (65, 12), 5, 3),
    ],
)
def test_paired_batch_shapes(tmp_path, num_fft, input_shape, output_shape, batch_size, num_sources):
    audio = chirp(1.5, SR)
    songs = [
        tuple(make_sample(tmp_path / f"{song}_{k}.wav", audio * (k + 1) / 4) for k in range(num_sources + 1))
        for song in range(2)
    ]
    kwargs = generator_kwargs(batch_size=batch_size, num_fft=num_fft, num_hop=num_fft // 2)
    with BatchGenerators.PairedBatchGenerator(songs, input_shape, output_shape, **kwargs) as generator:
        batch = generator.get_batch()
    bins = num_fft // 2 + 1
    assert len(batch) == 1 + num_sources
    assert batch[0].shape == (batch_size,) + input_shape + (1,)
    for source in batch[1:]:
        assert source.shape == (batch_size,) + output_shape + (1,)
    for array in batch:
        before = (array.shape[1] - bins) // 2
        assert array.dtype == np.float32 and array.min() >= 0.0 and array.max() > 0.0
        assert not array[:, :before].any() and not array[:, before + bins :].any()  # frequency padding


@pytest.mark.parametrize("shape, context, gain", [((130, 30), 10, None), ((129, 7), 0, (0.2, 1.2))])
def test_single_batch_shapes(tmp_path, shape, context, gain):
    samples = [make_sample(tmp_path / f"{i}.wav", chirp(1.2, SR)) for i in range(3)]
    kwargs = generator_kwargs(batch_size=6)
    with BatchGenerators.SingleSourceBatchGenerator(
        samples, shape, context_frames=context, random_gain=gain, **kwargs
    ) as generator:
        batch = generator.get_batch()
    assert batch.shape == (6,) + shape + (1,) and batch.dtype == np.float32
    assert not batch[:, BINS:].any()


def test_random_gain_range(tmp_path):
    samples = [make_sample(tmp_path / "tone.wav", sine(1000.0, 3.0, SR))]  # same magnitude everywhere
    kwargs = generator_kwargs(batch_size=32, cache_size=2)
    with BatchGenerators.SingleSourceBatchGenerator(samples, (BINS, 8), **kwargs) as plain:
        reference = plain.get_batch().max(axis=(1, 2, 3))
    with BatchGenerators.SingleSourceBatchGenerator(samples, (BINS, 8), random_gain=(0.2, 1.2), **kwargs) as gained:
        gains = gained.get_batch().max(axis=(1, 2, 3)) / reference.max()
    assert np.allclose(reference, reference.max(), rtol=1e-3)
    assert gains.min() >= 0.2 - 1e-3 and gains.max() <= 1.2 + 1e-3 and gains.std() > 0.1


@pytest.mark.parametrize("num_fft, num_hop", [(FFT, HOP), (512, 128)])
def test_paired_windows_are_aligned_and_padded_at_song_edges(tmp_path, num_fft, num_hop):
    # A 0.6 s song (39 frames at hop 128) is shorter than a section: every window touches an edge.
    songs = [chirp_song(tmp_path, "short", 0.6, sample_rate=22050), chirp_song(tmp_path, "long", 3.0)]
    bins = num_fft // 2 + 1
    input_shape, output_shape = (bins + 3, 36), (bins, 16)
    kwargs = generator_kwargs(batch_size=16, cache_size=6, duration=1.0, num_fft=num_fft, num_hop=num_hop)
    edges = set()
    with BatchGenerators.PairedBatchGenerator(songs, input_shape, output_shape, **kwargs) as generator:
        for _ in range(3):
            batch = generator.get_batch()
            edges |= check_paired_alignment(batch, songs, output_shape, input_shape, num_fft, num_hop)
    assert edges == {"start", "end"}


def test_silent_sources_give_zero_magnitudes(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0, silent_voice=True)]
    silent_file = make_sample(tmp_path / "silence.wav", np.zeros(SR, np.float32))
    songs.append((songs[0][0], songs[0][1], silent_file))
    with BatchGenerators.PairedBatchGenerator(
        songs, (BINS, 12), (BINS, 12), **generator_kwargs(batch_size=8)
    ) as generator:
        mixture, accompaniment, voice = generator.get_batch()
    assert voice.shape == accompaniment.shape == (8, BINS, 12, 1)
    assert not voice.any() and accompaniment.any()
    with BatchGenerators.SingleSourceBatchGenerator([silent_file, None], (BINS, 5), **generator_kwargs()) as generator:
        assert not generator.get_batch().any()


def test_inline_generator_is_deterministic_and_keeps_the_replacement_rate(tmp_path):
    songs = [chirp_song(tmp_path, str(i), 2.0) for i in range(3)]

    def batches(seed):
        with BatchGenerators.PairedBatchGenerator(
            songs, (BINS, 20), (BINS, 10), **generator_kwargs(seed=seed)
        ) as generator:
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


def test_batches_from_the_magnitude_store_equal_batches_computed_from_audio(tmp_path):
    # A short song (every window touches an edge), a longer one, and a song without voice.
    songs = [
        chirp_song(tmp_path, "short", 0.6),
        chirp_song(tmp_path, "long", 3.0),
        chirp_song(tmp_path, "instrumental", 2.0, silent_voice=True),
    ]
    store = magnitude_store(songs, tmp_path / "cache")
    mixtures = [song[0] for song in songs]

    def draw(magnitudes):
        kwargs = generator_kwargs(batch_size=16, cache_size=6, seed=3, magnitudes=magnitudes)
        with (
            BatchGenerators.PairedBatchGenerator(songs, (BINS + 3, 36), (BINS, 16), **kwargs) as paired,
            BatchGenerators.SingleSourceBatchGenerator(mixtures, (BINS, 36), context_frames=10, **kwargs) as single,
        ):
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
    with BatchGenerators.PairedBatchGenerator(songs, (BINS, 20), (BINS, 10), **kwargs) as generator:
        first = generator.get_batch()
        kept = [array.copy() for array in first]
        for _ in range(10):  # the workers overwrite freed slots meanwhile
            generator.get_batch()
        check_paired_alignment(first[:2], songs, (BINS, 10), (BINS, 20))
        assert generator.stats()["items_replaced"] >= 2 * 11
    for array, copy in zip(first, kept):  # a batch is the caller's, not a view of the cache
        np.testing.assert_array_equal(array, copy)


def test_bad_settings_are_rejected(tmp_path):
    song = chirp_song(tmp_path, "a", 1.0)
    with pytest.raises(ValueError, match="even"):
        BatchGenerators.PairedBatchGenerator([song], (BINS, 21), (BINS, 10), **generator_kwargs())
    with pytest.raises(ValueError, match="frequency bins"):
        BatchGenerators.PairedBatchGenerator([song], (100, 20), (BINS, 10), **generator_kwargs())
    with pytest.raises(ValueError, match="empty"):
        BatchGenerators.SingleSourceBatchGenerator([], (BINS, 5), **generator_kwargs())
    with pytest.raises(ValueError, match="mono_downmix"):
        BatchGenerators.SingleSourceBatchGenerator([song[0]], (BINS, 5), **generator_kwargs(mono_downmix=False))


def test_validation_batches_cover_every_song(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0), chirp_song(tmp_path, "b", 0.45, silent_voice=True)]
    input_shape, output_shape = (BINS + 1, 18), (BINS, 8)
    batches, valid_frames = zip(
        *BatchGenerators.validation_batches(songs, input_shape, output_shape, 3, SR, True, FFT, HOP)
    )
    frames = [whole_song_magnitudes(song[0]).shape[1] for song in songs]  # 65 and 29
    windows = [int(np.ceil(n / 8)) for n in frames]
    # Real frames per window: full windows, then each song's remainder (65 = 8 * 8 + 1, 29 = 3 * 8 + 5).
    assert np.concatenate(valid_frames).tolist() == [8] * 8 + [1] + [8] * 3 + [5]
    assert [len(batch[0]) for batch in batches] == [3] * (sum(windows) // 3) + (
        [sum(windows) % 3] * (sum(windows) % 3 > 0)
    )
    mixture, accompaniment, voice = (np.concatenate(parts) for parts in zip(*batches))
    assert mixture.shape[1:] == input_shape + (1,) and voice.shape[1:] == output_shape + (1,)
    np.testing.assert_allclose(mixture[:, :BINS, 5:13], accompaniment[:, :BINS, :], atol=1e-5)
    assert not mixture[0, :, :5].any() and not mixture[windows[0], :, :5].any()  # context before each start
    for song, n, first, count in zip(songs, frames, [0, windows[0]], windows):
        covered = np.concatenate(list(accompaniment[first : first + count, :BINS, :, 0]), axis=1)
        np.testing.assert_allclose(covered[:, :n], whole_song_magnitudes(song[1]), atol=1e-5)
        assert not covered[:, n:].any()  # zero padding past the end
    assert not voice[windows[0] :].any()
