"""Sections.py: what the readers do with files that cannot be used (skipped once, or stopping the
reader for non-finite samples) and with a store of other STFT settings."""

import os

import pytest

import Input
from pipeline import BatchGenerators

from songs import (
    BINS,
    FFT,
    SR,
    chirp,
    chirp_song,
    generator_kwargs,
    magnitude_store,
    make_sample,
    song_with_a_bad_voice_sample,
)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_non_finite_file_stops_the_batch_generator_instead_of_being_skipped(tmp_path, num_workers):
    good, bad = chirp_song(tmp_path, "good", 1.0), song_with_a_bad_voice_sample(tmp_path, "bad")
    with pytest.raises(Input.NonFiniteAudioError, match="bad_voice.wav"):
        with BatchGenerators.PairedBatchGenerator(
            [good, bad], (BINS, 12), (BINS, 12), **generator_kwargs(num_workers=num_workers)
        ) as generator:
            for _ in range(50):
                generator.get_batch()


def test_unreadable_file_is_skipped_with_one_warning(tmp_path, caplog):
    good = chirp_song(tmp_path, "good", 1.0)
    bad = chirp_song(tmp_path, "bad", 1.0)
    with open(bad[2].path, "wb") as handle:  # corrupted after the dataset was built
        handle.write(b"garbage" * 100)
    with caplog.at_level("WARNING", logger="pipeline.Sections"):
        with BatchGenerators.PairedBatchGenerator(
            [good, bad], (BINS, 12), (BINS, 12), **generator_kwargs()
        ) as generator:
            for _ in range(10):
                batch = generator.get_batch()
    warnings = [
        record for record in caplog.records if record.name == "pipeline.Sections" and record.levelname == "WARNING"
    ]
    assert len(warnings) == 1 and bad[2].path in warnings[0].getMessage()
    assert generator.stats()["unreadable_entries"] == 1
    assert batch[2].any()  # only the good song (with a voice) is left


def test_all_unreadable_files_raise(tmp_path, caplog):
    bad = make_sample(tmp_path / "bad.wav", chirp(1.0, SR))
    os.remove(bad.path)
    generator = BatchGenerators.SingleSourceBatchGenerator([bad, bad], (BINS, 5), **generator_kwargs())
    with pytest.raises(RuntimeError, match="None of the 2"):
        generator.get_batch()
    with pytest.raises(RuntimeError, match="None of the 1"):
        with BatchGenerators.SingleSourceBatchGenerator([bad], (BINS, 5), **generator_kwargs(num_workers=1)):
            pass
    assert sum(bad.path in record.getMessage() for record in caplog.records) == 2  # once per generator


def test_a_store_of_other_stft_settings_is_rejected(tmp_path):
    songs = [chirp_song(tmp_path, "a", 1.0)]
    store = magnitude_store(songs, tmp_path / "cache", num_fft=2 * FFT)
    with pytest.raises(ValueError, match="frequency bins.*num_fft"):
        BatchGenerators.PairedBatchGenerator(songs, (2 * BINS, 20), (BINS, 10), **generator_kwargs(magnitudes=store))
