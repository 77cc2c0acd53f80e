"""Metrics.py: BSS Eval (v3 and museval's v4) and the scale-optimal SNR, and how silence makes metrics undefined."""

import math
import sys

import numpy as np
import pytest

from evaluation import Metrics, Results

from tiny_model import SR, fake_row, signals


def test_perfect_estimates_score_high_and_swapped_estimates_low():
    references = signals()
    mixture = references.sum(axis=0)

    perfect = Metrics.compute_song_metrics(references, references, mixture)
    swapped = Metrics.compute_song_metrics(references, references[::-1], mixture)

    for result in perfect:
        assert result["SDR"] > 60 and result["SNR"] > 60 and result["SI_SDR"] > 60 and result["NSDR"] > 0
        assert not set(result["undefined_metrics"]) & set(Metrics.METRICS)
    for result in swapped:
        assert result["SDR"] < 0 and result["SI_SDR"] < 0


def test_scale_optimal_snr_scales_the_estimate_as_the_reference_does_and_si_sdr_is_its_own_column():
    reference, other = signals()
    estimate = 0.5 * reference + 0.1 * other
    a = np.dot(estimate, reference) / np.dot(estimate, estimate)  # the estimate scaled towards the target
    expected_snr = 10 * np.log10(np.sum(reference**2) / np.sum((reference - a * estimate) ** 2))
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

    assert all(math.isnan(voice[metric]) for metric in Metrics.ALL_METRICS)
    assert voice["undefined_reason"] == ["silent reference"]
    assert voice["undefined_frames_v4"] == voice["frames_v4"] == 2
    assert np.isnan(voice["framewise_v4"]["SDR"]).all()
    assert accompaniment["SDR"] > 10 and not math.isnan(accompaniment["SNR"])
    assert accompaniment["SDR_v4"] > 10 and accompaniment["undefined_frames_v4"] == 0
    # v4 follows v3: no other non-silent reference, so no interference to measure.
    assert set(accompaniment["undefined_metrics"]) == {"SIR", "NSDR", "NSIR", "NSNR", "SIR_v4"}

    rows = [
        fake_row("m", "DB", "song1", "voice", sdr=math.nan),
        fake_row("m", "DB", "song2", "voice", sdr=4.0),
        fake_row("m", "DB", "song3", "voice", sdr=8.0),
    ]
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
    assert all(math.isnan(with_silent[1][metric]) for metric in Metrics.ALL_METRICS)
    assert with_silent[1]["undefined_frames_v4"] == with_silent[1]["frames_v4"]
    for metric in Metrics.ALL_METRICS:
        assert with_silent[0][metric] == pytest.approx(normal[0][metric])


# ---- BSS Eval v4 (museval) ----


def stationary_sources(seconds, seed=0):
    """Two sources [2, samples] at SR whose power is the same in every 1-s frame: filtered noise
    and a two-tone chord."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, mode="same") * 0.2
    chord = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t + 1.0)
    return np.stack([noise, chord])


def white_noise_at(references, snr_db, seed=1):
    """White noise [sources, samples] at ``snr_db`` below each reference's mean power."""
    noise = np.random.default_rng(seed).standard_normal(references.shape)
    scale = np.mean(references**2, axis=1) / np.mean(noise**2, axis=1) / 10 ** (snr_db / 10)
    return noise * np.sqrt(scale)[:, None]


SISEC_FILTER_TAPS = round(512 * SR / 44100)  # SiSEC's 11.6 ms at SR


def museval_frames(references, estimates, filter_taps=SISEC_FILTER_TAPS):
    """museval's own v4 metrics per 1-s frame, ``(SDR, ISR, SIR, SAR)`` each [sources, frames],
    called as ``museval.evaluate(mode="v4")`` does, with SiSEC's filter duration (11.6 ms) by default."""
    import museval

    return museval.metrics.bss_eval(
        references[..., None],
        estimates[..., None],
        window=SR,
        hop=SR,
        compute_permutation=False,
        filters_len=filter_taps,
        framewise_filters=False,
        bsseval_sources_version=False,
    )[:4]


def demo_sources_at_the_model_rate(seconds=8.0, seed=3):
    """``[accompaniment, voice]`` of a demo song rendered at 44.1 kHz and resampled to SR as the
    project reads audio: the band just below SR's Nyquist frequency is almost empty."""
    import librosa

    from databases import DemoSongs

    rng = np.random.default_rng(seed)
    plan = DemoSongs.draw_song_plan(rng, seconds, 44100)
    stems = DemoSongs.render_song(plan, rng, DemoSongs.FAMILIES["MedleyDB"])
    voice = sum(stem.audio.mean(axis=1) for stem in stems if stem.is_voice)
    accompaniment = sum(stem.audio.mean(axis=1) for stem in stems if not stem.is_voice)
    return np.stack(
        [
            librosa.resample(np.asarray(source, np.float64), orig_sr=44100, target_sr=SR)
            for source in (accompaniment, voice)
        ]
    )


def inconsistent(sdr, isr, sir, sar, tolerance_db=1.0):
    """Where SDR exceeds the lowest of ISR, SIR and SAR by more than ``tolerance_db``: impossible
    for an estimate of the right gain, whose error terms are orthogonal parts of one error."""
    return sdr > np.minimum(np.minimum(isr, sir), sar) + tolerance_db


def test_v4_sdr_of_the_reference_plus_white_noise_is_that_snr_and_the_median_of_museval_frames():
    references = stationary_sources(10.5)
    estimates = references + white_noise_at(references, 10.0)

    results = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0), sample_rate=SR)

    frames = museval_frames(references, estimates)[0]
    for source, result in enumerate(results):
        # Independent noise at 10 dB: SDR and SAR near 10 dB (each 1-s frame estimates it to about
        # +-0.1 dB; 0.5 dB leaves room for other CPUs), nearly no interference or spatial distortion.
        assert result["SDR_v4"] == pytest.approx(10.0, abs=0.5)
        assert result["SAR_v4"] == pytest.approx(10.0, abs=0.5)
        assert result["SIR_v4"] > 20 and result["ISR_v4"] > 20
        assert result["SDR"] == pytest.approx(10.0, abs=0.5)  # v3 agrees on this case
        # 10 whole 1-s frames: the trailing half second is not evaluated (museval's framing).
        assert (result["frames_v4"], result["undefined_frames_v4"]) == (10, 0)
        assert result["SDR_v4"] == pytest.approx(np.median(frames[source]), rel=1e-9)
        assert not result["undefined_metrics"]


def test_v4_frames_where_a_reference_is_silent_are_undefined_counted_and_left_out_of_the_median():
    references = stationary_sources(8.0)
    references[1, : 3 * SR] = 0.0  # the voice starts after 3 s
    estimates = references + white_noise_at(stationary_sources(8.0), 10.0)

    accompaniment, voice = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0), sample_rate=SR)

    frames = museval_frames(references, estimates)[0]
    # museval gives NaN for every source of a frame in which any reference is all zeros.
    assert np.isnan(frames[:, :3]).all() and np.isfinite(frames[:, 3:]).all()
    for source, result in enumerate((accompaniment, voice)):
        assert (result["frames_v4"], result["undefined_frames_v4"]) == (8, 3)
        assert np.isnan(result["framewise_v4"]["SDR"][:3]).all()
        assert result["SDR_v4"] == pytest.approx(np.median(frames[source, 3:]), rel=1e-9)
        assert result["SDR_v4"] == pytest.approx(10.0, abs=0.5)
        assert not result["undefined_metrics"]  # the song as a whole is not silent
    assert voice["SDR"] > 5  # and v3 is defined too


def test_v4_decomposition_holds_together_on_references_resampled_to_the_model_rate():
    references = demo_sources_at_the_model_rate()
    # Broadband artefacts of the right gain: SDR_v4 must equal SAR_v4, with SIR_v4 and ISR_v4 high.
    noise = 0.003 * np.random.default_rng(0).standard_normal(references.shape[1])
    estimates = np.stack([references[0] - noise, references[1] + noise])

    results = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0), sample_rate=SR)
    scores = Metrics.bss_eval_v4(references, estimates, SR)

    assert Metrics.v4_filter_taps(SR) == 95 and Metrics.v4_filter_taps(44100) == 512
    assert not inconsistent(scores["SDR"], scores["ISR"], scores["SIR"], scores["SAR"]).any()
    for result in results:
        assert result["undefined_frames_v4"] == 0
        assert result["SDR_v4"] <= min(result["ISR_v4"], result["SIR_v4"], result["SAR_v4"]) + 1.0
        assert result["SDR_v4"] == pytest.approx(result["SAR_v4"], abs=1.0)
        assert result["SAR_v4"] > 30 and result["SAR"] > 30  # v3 agrees that the artefacts are small
    # The same song with museval's fixed 512 taps (62.5 ms at this rate): the filters' normal
    # equations are ill-conditioned in the empty band, and frames stop adding up.
    assert inconsistent(*museval_frames(references, estimates, filter_taps=512)).any()


def test_v4_frames_where_a_reference_is_only_resampler_residue_are_undefined():
    references = stationary_sources(6.0)
    residue = 1e-7 * np.random.default_rng(2).standard_normal(2 * SR)  # -140 dBFS: silent by our rule
    references[1, 2 * SR : 4 * SR] = residue
    estimates = references + white_noise_at(stationary_sources(6.0), 10.0)

    accompaniment, voice = Metrics.compute_song_metrics(references, estimates, references.sum(axis=0), sample_rate=SR)

    museval_sdr = museval_frames(references, estimates)[0]
    assert np.isfinite(museval_sdr).all() and museval_sdr[1, 2:4].max() < -50  # museval scores them
    for result in (accompaniment, voice):
        assert (result["frames_v4"], result["undefined_frames_v4"]) == (6, 2)
        assert np.isnan(result["framewise_v4"]["SDR"][2:4]).all()
    assert voice["SDR_v4"] == pytest.approx(10.0, abs=0.5)


def test_v4_nan_and_infinite_frames_are_undefined_counted_and_a_source_without_defined_frames_is_nan(monkeypatch):
    references = stationary_sources(4.0)
    nan, inf = math.nan, math.inf
    fake = {
        "SDR": [[1.0, nan, 3.0, inf], [inf, inf, inf, inf]],
        "SIR": [[20.0, nan, 22.0, 24.0], [30.0] * 4],
        "SAR": [[2.0, nan, 4.0, 6.0], [5.0] * 4],
        "ISR": [[9.0, nan, 9.0, 9.0], [8.0] * 4],
    }
    monkeypatch.setattr(Metrics, "bss_eval_v4", lambda *args: {name: np.array(values) for name, values in fake.items()})

    first, second = Metrics.compute_song_metrics(references, references * 0.9, references.sum(axis=0), ["v4"])

    assert (first["SDR_v4"], first["SIR_v4"], first["SAR_v4"]) == (2.0, 22.0, 4.0)  # medians of finite frames
    assert (first["frames_v4"], first["undefined_frames_v4"]) == (4, 2)  # frames 1 (NaN) and 3 (inf SDR)
    assert list(np.isnan(first["framewise_v4"]["SDR"])) == [False, True, False, True]  # inf -> NaN, as museval
    assert math.isnan(second["SDR_v4"]) and second["SAR_v4"] == 5.0 and second["undefined_frames_v4"] == 4
    assert second["undefined_metrics"] == ["SDR_v4"]
    assert "no 1-s frame with a finite SDR_v4" in second["undefined_reason"][0]
    assert "4 infinite" in second["undefined_reason"][0]


def test_bss_eval_setting_selects_versions_and_a_bad_value_is_a_clear_error():
    assert Metrics.check_bss_eval(["v4", "v3"]) == ("v3", "v4")
    assert Metrics.check_bss_eval("v4") == ("v4",)
    for bad in (["v5"], [], "V3", ["v3", 4]):
        with pytest.raises(ValueError, match=r"bss_eval=.*use a list of 'v3'.*and/or 'v4'"):
            Metrics.check_bss_eval(bad)
    references = signals()
    (v3,) = {
        tuple(sorted(result))
        for result in Metrics.compute_song_metrics(references, references * 0.8, references.sum(axis=0), ["v3"])
    }
    (v4,) = {
        tuple(sorted(result))
        for result in Metrics.compute_song_metrics(references, references * 0.8, references.sum(axis=0), ["v4"])
    }
    assert set(v3) == set(Metrics.METRICS) | {"undefined_metrics", "undefined_reason"}
    assert set(v4) == set(Metrics.METRICS_V4) | set(Metrics.V4_FRAME_COUNTS) | {
        "framewise_v4",
        "undefined_metrics",
        "undefined_reason",
    }


def test_v4_without_museval_is_a_clear_error_naming_the_setting(monkeypatch):
    monkeypatch.setitem(sys.modules, "museval", None)  # import museval now raises ImportError
    with pytest.raises(Metrics.BssEvalSettingError, match=r"needs museval.*ffmpeg.*bss_eval=\['v3'\]"):
        Metrics.check_bss_eval(["v3", "v4"])
    assert Metrics.check_bss_eval(["v3"]) == ("v3",)
