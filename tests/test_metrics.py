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
        assert result["SDR"] > 60 and result["SNR"] > 60 and result["SI_SDR"] > 60 and result["NSDR"] > 0
        assert not result["undefined_metrics"]
    for result in swapped:
        assert result["SDR"] < 0 and result["SI_SDR"] < 0


def test_scale_optimal_snr_scales_the_estimate_as_the_reference_does_and_si_sdr_is_its_own_column():
    reference, other = signals()
    estimate = 0.5 * reference + 0.1 * other
    a = np.dot(estimate, reference) / np.dot(estimate, estimate)  # the estimate scaled towards the target
    expected_snr = 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - a * estimate) ** 2))
    b = np.dot(estimate, reference) / np.dot(reference, reference)  # the target scaled towards the estimate
    expected_si_sdr = 10 * np.log10(np.sum((b * reference) ** 2) / np.sum((b * reference - estimate) ** 2))

    for scale in (1, 7):
        assert Metrics.scale_optimal_snr(reference, scale * estimate) == pytest.approx(expected_snr)
        assert Metrics.si_sdr(reference, scale * estimate) == pytest.approx(expected_si_sdr)
    assert expected_snr == pytest.approx(10 * np.log10(1 + 10 ** (expected_si_sdr / 10)))
    assert Metrics.scale_optimal_snr(reference, -estimate) > 0  # a useless estimate is never below 0 dB
    assert math.isnan(Metrics.scale_optimal_snr(np.zeros_like(reference), estimate))
    assert math.isnan(Metrics.scale_optimal_snr(reference, np.zeros_like(reference)))


def test_nsnr_is_the_snr_gain_over_the_mixture():
    references = signals()
    mixture = references.sum(axis=0)
    estimates = 0.9 * references + 0.05 * references[::-1]
    for source, result in enumerate(Metrics.compute_song_metrics(references, estimates, mixture)):
        mixture_snr = Metrics.scale_optimal_snr(references[source], mixture)
        assert result["NSNR"] == pytest.approx(result["SNR"] - mixture_snr)
        assert result["SNR"] == pytest.approx(Metrics.scale_optimal_snr(references[source], estimates[source]))


def test_silent_reference_is_undefined_without_noise_and_left_out_of_aggregates():
    references = signals()
    references[1] = 0.0
    estimates = references + 0.01 * signals(seed=3)[::-1]

    accompaniment, voice = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0))

    assert all(math.isnan(voice[metric]) for metric in Metrics.METRICS)
    assert voice["undefined_reason"] == ["silent reference"]
    assert accompaniment["SDR"] > 10 and not math.isnan(accompaniment["SNR"])
    assert set(accompaniment["undefined_metrics"]) == {"SIR", "NSDR", "NSIR", "NSNR"}

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
