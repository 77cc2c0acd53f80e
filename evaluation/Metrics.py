"""BSS Eval (v3, mir_eval; v4, museval) and the scale-optimal SNR of one song's estimates, with undefined values.

Per song and source, at the model's sample rate (8192 Hz mono), in dB:

- ``SDR``, ``SIR``, ``SAR``: ``mir_eval.separation.bss_eval_sources`` without permutation;
- ``NSDR``, ``NSIR``: SDR / SIR of the estimate minus those of the mixture used as the
  estimate of every source;
- ``SNR``: the reference's scale-optimal SNR ``10 log10(|r|^2 / |r - a e|^2)`` with
  ``a = <e, r> / <e, e>`` (the estimate ``e`` scaled optimally towards the reference ``r``),
  which equals ``10 log10(1 + 10^(SI-SDR / 10))``;
- ``NSNR``: SNR of the estimate minus the SNR of the mixture used as the estimate;
- ``SI_SDR``: scale-invariant SDR ``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / <r, r>``
  (the reference scaled towards the estimate).

BSS Eval v4 (museval 0.4.1, the SiSEC 2018 convention), beside the paper's v3, per song and source:

- ``SDR_v4``, ``SIR_v4``, ``SAR_v4``, ``ISR_v4``: museval's ``bss_eval`` as ``museval.evaluate(...,
  mode="v4")`` calls it (the ``bss_eval_images`` version: distortion filters estimated once on the
  whole song, metrics per frame) with 1-s windows and hops (win = hop = the sample rate), but with
  filters of SiSEC's *duration* rather than its tap count: 512 taps at 44.1 kHz are 11.6 ms, so
  :func:`v4_filter_taps` gives 95 taps at 8192 Hz. museval's fixed 512 taps would be 62.5 ms at
  this rate, and audio resampled to 8192 Hz leaves the band just below Nyquist almost empty
  (-100 to -120 dB): the long filters' normal equations become ill-conditioned there, their
  gains explode, and applied to 1-s frames they blow up the frame edges, so that SDR_v4 came out
  above SIR_v4 or SAR_v4, which the decomposition does not allow. Per song the median over the
  frames where the value is defined, as museval's own aggregation does (``TrackStore`` turns
  +-inf into NaN and pandas' median skips NaN). A trailing part shorter than a window is not
  evaluated (museval's framing).
- A frame is undefined for every source when one of the references is silent in it by the
  project's rule (:data:`SILENCE_MEAN_SQUARE`), as museval does for exact zeros only: resampler
  residue at -90 dBFS or below would otherwise score SDRs of -45 to -466 dB that enter the medians.
- ``frames_v4``: the song's 1-s frames; ``undefined_frames_v4``: frames left out of at least one
  of the source's v4 medians (all frames when the source's v4 metrics are undefined).

Our v4 is computed at the model's rate (8192 Hz) on mono audio, with SiSEC's filter duration and
our silence rule, while SiSEC 2018 evaluated 44.1 kHz stereo with exact-zero silence: the numbers
are comparable with the published ones in method, not directly in value (a model that works at
8192 Hz is not judged above 4 kHz). :data:`BSS_EVAL_VERSIONS` are the choices of Training.py's
``bss_eval`` setting.

A metric without a meaningful value is *undefined*: stored as NaN (``null`` in JSON, an empty
cell in CSV), flagged, counted and left out of means and medians; no noise is ever added.
See :func:`compute_song_metrics` for the rules.
"""

import math
import types
import warnings
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

# A reference whose mean power is at most this (RMS 1e-6, -120 dBFS) counts as silent.
SILENCE_MEAN_SQUARE = 1e-12
METRICS = ("SDR", "SIR", "SAR", "NSDR", "NSIR", "SNR", "NSNR", "SI_SDR")  # BSS Eval v3 and the SNRs
METRICS_V4 = ("SDR_v4", "SIR_v4", "SAR_v4", "ISR_v4")
VERSION_METRICS = {"v3": METRICS, "v4": METRICS_V4}
BSS_EVAL_VERSIONS = tuple(VERSION_METRICS)
DEFAULT_BSS_EVAL = ("v3", "v4")
ALL_METRICS = METRICS + METRICS_V4
MUSEVAL_METRICS = ("SDR", "SIR", "SAR", "ISR")  # museval's names; ours add "_v4"
V4_FRAME_COUNTS = ("frames_v4", "undefined_frames_v4")
FRAMEWISE_V4 = "framewise_v4"  # result key: museval's values per 1-s frame
V4_WINDOW_SECONDS = 1  # museval's (and SiSEC 2018's) window and hop
V4_FILTER_SECONDS = 512 / 44100  # SiSEC 2018's distortion filters: museval's 512 taps at 44.1 kHz
MODEL_SAMPLE_RATE = 8192  # the paper's expected_sr


class BssEvalSettingError(ValueError):
    """The ``bss_eval`` setting is wrong, or its v4 cannot run here (museval or ffmpeg missing)."""


def check_bss_eval(value: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """Validate Training.py's ``bss_eval`` setting and make sure museval can be used if v4 is on.

    Args:
        value: ``"v3"``, ``"v4"`` or a list of them, e.g. ``["v3", "v4"]`` (the default).

    Returns:
        The selected versions in :data:`BSS_EVAL_VERSIONS` order, without repeats.

    Raises:
        BssEvalSettingError: an unknown or empty value, or v4 without a usable museval.
    """
    versions = [value] if isinstance(value, str) else value
    try:
        versions = list(versions)
    except TypeError:
        versions = [value]
    wrong = [version for version in versions if version not in BSS_EVAL_VERSIONS]
    if wrong or not versions:
        raise BssEvalSettingError(
            f"bss_eval={value!r}: use a list of 'v3' (the paper's BSS Eval, mir_eval, whole song) and/or 'v4' "
            "(museval, SiSEC 2018: 1-s frames, median), e.g. bss_eval=['v3', 'v4'] (the default) or "
            "bss_eval=['v3']" + (f"; unknown: {', '.join(map(repr, wrong))}" if wrong else "; it is empty") + "."
        )
    if "v4" in versions:
        museval_module()
    return tuple(version for version in BSS_EVAL_VERSIONS if version in versions)


def metrics_of(versions: Sequence[str]) -> Tuple[str, ...]:
    """The metric columns of the selected BSS Eval versions, in :data:`ALL_METRICS` order."""
    return tuple(metric for version in BSS_EVAL_VERSIONS if version in versions for metric in VERSION_METRICS[version])


def museval_module() -> types.ModuleType:
    """``import museval``, or a clear error saying what is missing and how to switch v4 off.

    museval imports musdb and stempeg, which need ffmpeg and ffprobe on PATH (the project's
    setup installs them); it does not import TensorFlow.
    """
    try:
        import museval
    except (ImportError, RuntimeError) as error:
        raise BssEvalSettingError(
            f"BSS Eval v4 (bss_eval includes 'v4') needs museval ({error}). Install the requirements "
            "(pip install -r requirements.txt) and ffmpeg/ffprobe (museval's musdb/stempeg need them on PATH), "
            "or evaluate with bss_eval=['v3'] only."
        ) from error
    return museval


def scale_optimal_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The reference's scale-optimal SNR in dB: the *estimate* scaled optimally towards the target,
    ``10 log10(|r|^2 / |r - a e|^2)`` with ``a = <e, r> / <e, e>``.

    It equals ``10 log10(1 + 10^(SI-SDR / 10))``, so it is never below 0 dB (a useless
    estimate scaled by ``a`` ~ 0 leaves the whole target as error). Returns NaN when undefined
    (silent reference or estimate) and +inf for a perfect estimate.
    """
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    reference_power = float(np.dot(reference, reference))
    estimate_power = float(np.dot(estimate, estimate))
    if reference_power == 0.0 or estimate_power == 0.0:
        return math.nan
    error_power = float(np.sum((reference - (np.dot(estimate, reference) / estimate_power) * estimate) ** 2))
    if error_power == 0.0:
        return math.inf
    return 10.0 * math.log10(reference_power / error_power)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB: ``10 log10(|a r|^2 / |a r - e|^2)`` with ``a = <e, r> / <r, r>``
    (the *target* scaled towards the estimate).

    Returns NaN when undefined (silent reference or estimate) and +inf for a perfect estimate.
    """
    reference = np.asarray(reference, np.float64)
    estimate = np.asarray(estimate, np.float64)
    reference_power = float(np.dot(reference, reference))
    if reference_power == 0.0 or not np.any(estimate):
        return math.nan
    target = (np.dot(estimate, reference) / reference_power) * reference
    error_power = float(np.sum((target - estimate) ** 2))
    target_power = float(np.sum(target**2))
    if error_power == 0.0:
        return math.inf
    if target_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(target_power / error_power)


def compute_song_metrics(
    references: np.ndarray,
    estimates: np.ndarray,
    mixture: np.ndarray,
    versions: Sequence[str] = DEFAULT_BSS_EVAL,
    sample_rate: int = MODEL_SAMPLE_RATE,
) -> List[dict]:
    """All metrics of one song, per source.

    Args:
        references: true sources ``[sources, samples]`` at the model's sample rate, mono.
        estimates: separated sources ``[sources, samples]`` in the same order.
        mixture: the mixture ``[samples]`` (for NSDR / NSIR / NSNR).
        versions: BSS Eval versions to compute (see :func:`check_bss_eval`): ``"v3"`` gives
            :data:`METRICS`, ``"v4"`` gives :data:`METRICS_V4` and the frame counts.
        sample_rate: of the audio, in Hz; v4's windows and hops are this many samples (1 s).

    Returns:
        One dict per source: ``{metric: float (NaN if undefined) for the selected versions'
        metrics, "undefined_metrics": [...], "undefined_reason": [...]}``; with v4 also
        ``"frames_v4"``, ``"undefined_frames_v4"`` (ints) and ``"framewise_v4"``: ``{"SDR", "SIR",
        "SAR", "ISR": float64 [frames]}``, museval's values per 1-s frame in dB with NaN where
        undefined (what :func:`Results.write_museval_json` stores).

    Undefined values (NaN) and how silence is handled:

    - A *silent reference* (mean power <= :data:`SILENCE_MEAN_SQUARE`) makes every metric of
      its source undefined. BSS Eval then runs on the non-silent references only; an all-zero
      reference spans nothing, so leaving it out of the interference subspace gives exactly the
      numbers mir_eval would give if it accepted silent references.
    - An all-zero *estimate* makes every metric of its source undefined (mir_eval rejects it;
      its SDR would be -inf). To keep mir_eval's input valid, that slot's estimate is replaced by
      its reference and the result thrown away: without permutation, each estimate is
      decomposed on its own, so the other sources' numbers are unaffected.
    - SIR and NSIR are undefined for a source with no other non-silent reference (no
      interference to measure; mir_eval would report +inf).
    - NSDR, NSIR and NSNR are undefined when any reference of the song is silent (the mixture then is
      a near-perfect estimate of the remaining source, so the difference is meaningless) or
      when the mixture is all zeros.
    - v4 follows the same rules (museval is given the same sources as mir_eval, with the same
      stand-in for an all-zero estimate; SIR_v4 as SIR). Per frame, every source is NaN in a
      frame in which any reference it was given is silent (:data:`SILENCE_MEAN_SQUARE`, in
      that frame) or any estimate is all zeros (museval's rule), and +-inf where an error term
      is exactly zero: such frames are undefined, counted in
      ``undefined_frames_v4`` and left out of the medians; a source without a defined frame
      gets NaN.
    """
    versions = check_bss_eval(versions)
    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    mixture = np.asarray(mixture, np.float64)
    if references.shape != estimates.shape or references.ndim != 2 or mixture.shape != references.shape[1:]:
        raise ValueError(
            f"Shapes do not match: references {references.shape}, estimates {estimates.shape}, mixture {mixture.shape}"
        )
    metrics = metrics_of(versions)
    num_sources = references.shape[0]
    results = [
        {**{metric: math.nan for metric in metrics}, "undefined_metrics": [], "undefined_reason": []}
        for _ in range(num_sources)
    ]
    silent_reference = np.mean(references**2, axis=1) <= SILENCE_MEAN_SQUARE
    silent_estimate = ~np.any(estimates, axis=1)
    active = np.flatnonzero(~silent_reference)
    # Stand-ins for all-zero estimates keep mir_eval's and museval's input valid (results thrown away).
    valid_estimates = np.where(silent_estimate[active, None], references[active], estimates[active])
    if "v3" in versions:
        _add_v3_metrics(
            results, references, estimates, valid_estimates, mixture, silent_reference, silent_estimate, active
        )
    v4_notes = [[] for _ in results]
    if "v4" in versions:
        v4_notes = _add_v4_metrics(results, references, valid_estimates, silent_estimate, active, sample_rate)
    for source, result in enumerate(results):
        result["undefined_metrics"] = [metric for metric in metrics if math.isnan(result[metric])]
        result["undefined_reason"] = _undefined_reasons(
            source,
            silent_reference,
            silent_estimate,
            active.size,
            np.any(mixture),
            result["undefined_metrics"],
            v4_notes[source],
        )
    return results


def _add_v3_metrics(
    results, references, estimates, valid_estimates, mixture, silent_reference, silent_estimate, active
):
    """The paper's metrics (:data:`METRICS`) into ``results``, by the rules of :func:`compute_song_metrics`."""
    from mir_eval.separation import bss_eval_sources

    if not active.size:
        return
    active_references = references[active]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval 0.8 warns about the function's removal in 0.9
        sdr, sir, sar, _ = bss_eval_sources(active_references, valid_estimates, compute_permutation=False)
        mixture_scores = None
        if not silent_reference.any() and np.any(mixture):
            mixture_scores = bss_eval_sources(
                active_references, np.tile(mixture, (active.size, 1)), compute_permutation=False
            )
    for index, source in enumerate(active):
        if silent_estimate[source]:
            continue
        result = results[source]
        result["SDR"], result["SAR"] = float(sdr[index]), float(sar[index])
        result["SNR"] = scale_optimal_snr(references[source], estimates[source])
        result["SI_SDR"] = si_sdr(references[source], estimates[source])
        if active.size > 1:
            result["SIR"] = float(sir[index])
        if mixture_scores is not None:
            result["NSDR"] = float(sdr[index] - mixture_scores[0][index])
            result["NSNR"] = result["SNR"] - scale_optimal_snr(references[source], mixture)
            if active.size > 1:
                result["NSIR"] = float(sir[index] - mixture_scores[1][index])


def bss_eval_v4(references: np.ndarray, estimates: np.ndarray, sample_rate: int) -> Dict[str, np.ndarray]:
    """museval's BSS Eval v4 (images version, no permutation) with 1-s windows and hops.

    Args:
        references, estimates: ``[sources, samples]`` mono, float; every reference and
            estimate must have a non-zero sample (museval's rule).
        sample_rate: in Hz; window = hop = ``sample_rate`` samples.

    Returns:
        ``{"SDR", "SIR", "SAR", "ISR": float64 [sources, frames]}`` in dB, as museval gives them
        (NaN in frames with an all-zero estimate or a silent reference by
        :data:`SILENCE_MEAN_SQUARE`, +-inf where an error is exactly 0).
    """
    museval = museval_module()
    references = np.asarray(references, np.float64)
    window = int(V4_WINDOW_SECONDS * sample_rate)
    sdr, isr, sir, sar, _ = museval.metrics.bss_eval(
        references[..., None],
        np.asarray(estimates, np.float64)[..., None],
        window=window,
        hop=window,
        compute_permutation=False,
        filters_len=v4_filter_taps(sample_rate),
        framewise_filters=False,
        bsseval_sources_version=False,
    )
    scores = {
        name: np.asarray(values, np.float64)
        for name, values in (("SDR", sdr), ("SIR", sir), ("SAR", sar), ("ISR", isr))
    }
    silent_frames = _silent_reference_frames(references, window, museval)
    for values in scores.values():
        values[:, silent_frames] = math.nan
    return scores


def v4_filter_taps(sample_rate: int) -> int:
    """Taps of BSS Eval v4's distortion filters at ``sample_rate`` Hz: SiSEC 2018's duration
    (:data:`V4_FILTER_SECONDS`, 512 taps at 44.1 kHz), so 95 taps at 8192 Hz."""
    return max(1, int(round(V4_FILTER_SECONDS * sample_rate)))


def _silent_reference_frames(references: np.ndarray, window: int, museval) -> np.ndarray:
    """``bool [frames]``: frames (museval's framing) in which any reference is silent by
    :data:`SILENCE_MEAN_SQUARE`."""
    framing = museval.metrics.Framing(window, window, references.shape[1])
    return np.array(
        [bool(np.any(np.mean(references[:, frame] ** 2, axis=1) <= SILENCE_MEAN_SQUARE)) for frame in framing],
        dtype=bool,
    )


def v4_frame_count(num_samples: int, sample_rate: int) -> int:
    """museval's number of 1-s frames of a song of ``num_samples`` (whole windows only; one frame,
    the whole song, if it is shorter than a window)."""
    window = int(V4_WINDOW_SECONDS * sample_rate)
    return int(museval_module().metrics.Framing(window, window, num_samples).nwin)


def _add_v4_metrics(results, references, valid_estimates, silent_estimate, active, sample_rate):
    """:data:`METRICS_V4`, the frame counts and the framewise values into ``results``.

    Returns:
        Per source, why a v4 metric has no defined frame (``[]`` if every one has some).
    """
    num_frames = v4_frame_count(references.shape[1], sample_rate)
    framewise = {name: np.full((references.shape[0], num_frames), math.nan) for name in MUSEVAL_METRICS}
    notes = [[] for _ in results]
    if active.size:
        scores = bss_eval_v4(references[active], valid_estimates, sample_rate)
        for index, source in enumerate(active):
            if silent_estimate[source]:
                continue
            for name in MUSEVAL_METRICS:
                if name == "SIR" and active.size <= 1:  # no interference to measure: museval gives +inf
                    continue
                values = scores[name][index]
                framewise[name][source] = np.where(np.isfinite(values), values, math.nan)
            notes[source] = _frameless_notes(
                {name: scores[name][index] for name in MUSEVAL_METRICS if name != "SIR" or active.size > 1}
            )
    # SIR without interference to measure is undefined for the whole song (in undefined_metrics), so
    # its frames do not count; a silent reference or estimate leaves every frame undefined.
    counted = [name for name in MUSEVAL_METRICS if name != "SIR" or active.size > 1]
    for source, result in enumerate(results):
        values = {name: framewise[name][source] for name in MUSEVAL_METRICS}
        for name in MUSEVAL_METRICS:
            defined = values[name][~np.isnan(values[name])]
            result[name + "_v4"] = float(np.median(defined)) if defined.size else math.nan
        result["frames_v4"] = num_frames
        result["undefined_frames_v4"] = int(np.isnan(np.stack([values[name] for name in counted])).any(axis=0).sum())
        result[FRAMEWISE_V4] = values
    return notes


def _frameless_notes(scores):
    """Why the v4 metrics in ``scores`` (``{museval name: [frames]}``) without a finite frame have none."""
    frameless = [name for name, values in scores.items() if not np.isfinite(values).any()]
    if not frameless:
        return []
    values = np.stack([scores[name] for name in frameless])
    silent, infinite = int(np.isnan(values).any(axis=0).sum()), int(np.isinf(values).any(axis=0).sum())
    causes = ([f"{silent} with a silent reference or an all-zero estimate"] if silent else []) + (
        [f"{infinite} infinite (an exactly zero error, e.g. a perfect estimate)"] if infinite else []
    )
    return [
        f"no 1-s frame with a finite {'/'.join(name + '_v4' for name in frameless)} "
        f"(BSS Eval v4 frames: {', '.join(causes)})"
    ]


def _undefined_reasons(source, silent_reference, silent_estimate, num_active, mixture_nonzero, undefined, v4_notes=()):
    if not undefined:
        return []
    if silent_reference[source]:
        return ["silent reference"]
    if silent_estimate[source]:
        return ["silent estimate"]
    reasons = []
    if num_active <= 1 and ("SIR" in undefined or "SIR_v4" in undefined):
        reasons.append("no other non-silent reference (no interference to measure)")
    if "NSDR" in undefined:
        reasons.append("another reference is silent" if silent_reference.any() else "silent mixture")
    return reasons + list(v4_notes)
