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


def rows_with_reasons(values, reasons, model="m", source="voice"):
    """Rows as per_song.csv gives them: metric (NaN where undefined) and ';'-separated reasons."""
    return [dict(row, undefined_reason=reasons.get(row["song"], "")) for row in rows(values, model, source=source)]


def test_a_silent_estimate_is_a_failure_scored_as_the_worst_value_and_counted_per_model():
    baseline = rows_with_reasons({"a": 4.0, "b": 2.0, "c": 6.0}, {})
    semi = rows_with_reasons({"a": 5.0, "b": math.nan, "c": 7.0}, {"b": "silent estimate"})
    (row,) = [row for row in Comparison.gain_table([baseline], [semi]) if row["database"] == "all"]
    # b scores 2.0, the lowest finite value of both models here: difference 0, not left out.
    assert row["songs"] == 3 and row["mean"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert (row["failures"], row["baseline_failures"]) == (1, 0)
    # Dropping b instead would have claimed +1.0 dB.
    assert Comparison.paired_differences(baseline, semi) == {("DB", "voice"): {"a": 1.0, "c": 1.0}}


def test_a_failure_never_beats_a_real_estimate_and_minus_infinity_is_a_failure():
    baseline = rows_with_reasons({"a": -3.0, "b": 1.0}, {})
    semi = rows_with_reasons({"a": -math.inf, "b": 2.0}, {})
    differences, failures = Comparison.scored_differences(
        baseline, semi, "SDR", Comparison.score_range([baseline, semi], "SDR")
    )
    assert differences[("DB", "voice")] == {"a": 0.0, "b": 1.0}  # -inf scored as -3.0, the worst real value
    assert failures[("DB", "voice")] == [0, 1]


def test_a_silent_reference_is_no_models_failure_and_leaves_the_song_out():
    reasons = {"b": "silent reference"}
    baseline = rows_with_reasons({"a": 1.0, "b": math.nan}, reasons)
    semi = rows_with_reasons({"a": 2.0, "b": math.nan}, reasons)
    (row,) = [row for row in Comparison.gain_table([baseline], [semi]) if row["database"] == "all"]
    assert row["songs"] == 1 and row["mean"] == pytest.approx(1.0)
    assert (row["failures"], row["baseline_failures"]) == (0, 0)


def test_both_models_failing_on_a_song_is_a_tie_counted_for_both():
    reasons = {"b": "silent estimate"}
    baseline = rows_with_reasons({"a": 1.0, "b": math.nan}, reasons)
    semi = rows_with_reasons({"a": 3.0, "b": math.nan}, reasons)
    (row,) = [row for row in Comparison.gain_table([baseline], [semi]) if row["database"] == "all"]
    assert row["songs"] == 2 and row["mean"] == pytest.approx(1.0)
    assert (row["failures"], row["baseline_failures"]) == (1, 1)


def test_gain_lines_show_failures_when_there_are_any():
    baseline = rows_with_reasons({"a": 1.0, "b": 2.0}, {})
    semi = rows_with_reasons({"a": 2.0, "b": math.nan}, {"b": "silent estimate"})
    lines = Comparison.format_gain_lines(Comparison.gain_table([baseline], [semi])).splitlines()
    assert lines[1] == (
        "  voice: SDR +0.00 dB [-1.00, +1.00] over 2 songs; failures (silent or non-finite "
        "estimate, scored as the worst value): semi-supervised 1, supervised 0"
    )
