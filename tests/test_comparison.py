"""Comparison.py: paired per-song differences, the crossed bootstrap interval, the gain table."""

import math

import numpy as np
import pytest

from evaluation import Comparison


def rows(values, model="m", database="DB", source="voice", metric="SDR"):
    """Per-song rows ``{song: value}`` in the Results.PER_SONG_COLUMNS style (only what is used)."""
    return [
        {"model": model, "database": database, "song": song, "source": source, metric: value}
        for song, value in values.items()
    ]


def test_paired_differences_subtract_song_by_song_and_skip_undefined_values():
    baseline = rows({"a": 1.0, "b": 2.0, "c": math.nan, "d": 4.0})
    other = rows({"a": 1.5, "b": 1.0, "c": 3.0, "d": math.inf})
    assert Comparison.paired_differences(baseline, other) == {("DB", "voice"): {"a": 0.5, "b": -1.0}}


def test_models_evaluated_on_different_songs_cannot_be_paired():
    with pytest.raises(ValueError, match="different songs"):
        Comparison.paired_differences(rows({"a": 1.0}), rows({"b": 1.0}))


def test_a_constant_gain_has_a_zero_width_interval():
    assert Comparison.bootstrap_interval(np.full((3, 7), 0.8)) == pytest.approx((0.8, 0.8, 0.8))


def test_the_interval_reflects_differences_between_songs():
    differences = np.random.default_rng(0).normal(1.0, 2.0, size=(1, 40))
    mean, low, high = Comparison.bootstrap_interval(differences)
    assert mean == pytest.approx(differences.mean())
    # The normal-theory 95 % interval of a mean of 40 values with sd 2 is about +-0.62.
    standard_error = differences.std(ddof=1) / np.sqrt(40)
    assert low < mean < high
    assert (high - low) == pytest.approx(2 * 1.96 * standard_error, rel=0.2)


def test_the_interval_also_reflects_differences_between_seeds():
    # Every song gains the same within a seed, but the seeds disagree: a bootstrap over songs
    # alone would claim certainty, the crossed one must not.
    differences = np.repeat(np.array([[2.0], [0.0], [1.0]]), 10, axis=1)
    mean, low, high = Comparison.bootstrap_interval(differences)
    assert mean == pytest.approx(1.0)
    assert low < 0.5 and high > 1.5


def test_undefined_cells_are_left_out_and_an_empty_matrix_gives_nan():
    differences = np.array([[1.0, np.nan], [1.0, np.nan]])
    assert Comparison.bootstrap_interval(differences) == pytest.approx((1.0, 1.0, 1.0))
    assert all(math.isnan(value) for value in Comparison.bootstrap_interval(np.full((2, 3), np.nan)))


def test_gain_table_pools_seeds_and_databases():
    def model(offset, seed):
        return (
            rows({"a": 1.0 + offset, "b": 2.0 + offset}, database="DSD100")
            + rows({"x": 3.0 + 2 * offset + seed, "y": math.nan}, database="MedleyDB")
            + rows({"p": 0.0 + 2 * offset + seed}, database="iKala")
        )

    baseline = [model(0.0, seed) for seed in (0, 1)]
    semi = [model(1.0, seed) for seed in (0, 1)]
    table = Comparison.gain_table(baseline, semi, groups={"unsupervised": ["MedleyDB", "iKala"]})
    by_name = {row["database"]: row for row in table}
    assert set(by_name) == {"DSD100", "MedleyDB", "iKala", "unsupervised", "all"}
    assert by_name["DSD100"]["mean"] == pytest.approx(1.0) and by_name["DSD100"]["songs"] == 2
    assert by_name["MedleyDB"]["songs"] == 1  # y is undefined for both models
    assert by_name["unsupervised"]["mean"] == pytest.approx(2.0) and by_name["unsupervised"]["songs"] == 2
    assert by_name["all"]["songs"] == 4 and by_name["all"]["seeds"] == 2
    assert by_name["all"]["mean"] == pytest.approx((1 + 1 + 2 + 2) / 4)


def test_gain_table_needs_as_many_seeds_for_both_models():
    with pytest.raises(ValueError, match="per seed"):
        Comparison.gain_table([rows({"a": 1.0})], [])


def test_gain_lines_name_each_source_with_its_song_count():
    table = Comparison.gain_table(
        [rows({"a": 1.0, "b": 2.0}) + rows({"a": 0.0, "b": 1.0}, source="accompaniment")],
        [rows({"a": 2.0, "b": 3.0}) + rows({"a": 0.5, "b": 1.5}, source="accompaniment")],
    )
    lines = Comparison.format_gain_lines(table).splitlines()
    assert "semi-supervised" in lines[0] and "supervised" in lines[0]
    assert lines[1:] == [
        "  voice: SDR +1.00 dB [+1.00, +1.00] over 2 songs",
        "  accompaniment: SDR +0.50 dB [+0.50, +0.50] over 2 songs",
    ]
