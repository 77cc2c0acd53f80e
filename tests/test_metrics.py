"""Metrics.py: BSS Eval and the scale-optimal SNR, and how silence makes metrics undefined."""

import math

import numpy as np
import pytest

import Metrics
import Results
from tiny_model import fake_row, signals


def test_perfect_estimates_score_high_and_swapped_estimates_low():
    references = signals()
    mixture = references.sum(axis=0)

    perfect = Metrics.compute_song_metrics(references, references, mixture)
    swapped = Metrics.compute_song_metrics(references, references[::-1], mixture)

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

    assert Metrics.scale_optimal_snr(reference, estimate) == pytest.approx(expected)
    assert Metrics.scale_optimal_snr(reference, 7 * estimate) == pytest.approx(expected)
    assert math.isnan(Metrics.scale_optimal_snr(np.zeros_like(reference), estimate))


def test_silent_reference_is_undefined_without_noise_and_left_out_of_aggregates():
    references = signals()
    references[1] = 0.0
    estimates = references + 0.01 * signals(seed=3)[::-1]

    accompaniment, voice = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0))

    assert all(math.isnan(voice[metric]) for metric in Metrics.METRICS)
    assert voice["undefined_reason"] == ["silent reference"]
    assert accompaniment["SDR"] > 10 and not math.isnan(accompaniment["SNR_scale_optimal"])
    assert set(accompaniment["undefined_metrics"]) == {"SIR", "NSDR", "NSIR"}

    rows = [fake_row("m", "DB", "song1", "voice", sdr=math.nan), fake_row("m", "DB", "song2", "voice", sdr=4.0),
            fake_row("m", "DB", "song3", "voice", sdr=8.0)]
    summary = {(row["database"], row["metric"]): row for row in Results.summarise({"m": rows})}
    assert summary[("all", "SDR")]["mean"] == pytest.approx(6.0)
    assert summary[("DB", "SDR")]["num_undefined"] == 1 and summary[("DB", "SDR")]["num_defined"] == 2


def test_silent_estimate_is_undefined_and_does_not_change_the_other_source():
    references = signals()
    estimates = references + 0.05 * signals(seed=5)
    silent_voice = estimates.copy()
    silent_voice[1] = 0.0

    normal = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0))
    with_silent = Metrics.compute_song_metrics(references, silent_voice, references.sum(axis=0))

    assert with_silent[1]["undefined_reason"] == ["silent estimate"]
    assert all(math.isnan(with_silent[1][metric]) for metric in Metrics.METRICS)
    for metric in Metrics.METRICS:
        assert with_silent[0][metric] == pytest.approx(normal[0][metric])
