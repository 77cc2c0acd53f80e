"""BSS Eval (v3, mir_eval) and the scale-optimal SNR of one song's estimates, with undefined values.

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

A metric without a meaningful value is *undefined*: stored as NaN (``null`` in JSON, an empty
cell in CSV), flagged, counted and left out of means and medians; no noise is ever added.
See :func:`compute_song_metrics` for the rules.
"""

import math
import warnings
from typing import List

import numpy as np

# A reference whose mean power is at most this (RMS 1e-6, -120 dBFS) counts as silent.
SILENCE_MEAN_SQUARE = 1e-12
METRICS = ("SDR", "SIR", "SAR", "NSDR", "NSIR", "SNR", "NSNR", "SI_SDR")


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
    target_power = float(np.sum(target ** 2))
    if error_power == 0.0:
        return math.inf
    if target_power == 0.0:
        return -math.inf
    return 10.0 * math.log10(target_power / error_power)


def compute_song_metrics(references: np.ndarray, estimates: np.ndarray,
                         mixture: np.ndarray) -> List[dict]:
    """All metrics of one song, per source.

    Args:
        references: true sources ``[sources, samples]`` at the model's sample rate.
        estimates: separated sources ``[sources, samples]`` in the same order.
        mixture: the mixture ``[samples]`` (for NSDR / NSIR / NSNR).

    Returns:
        One dict per source: ``{metric: float (NaN if undefined), "undefined_metrics": [...],
        "undefined_reason": [...]}``.

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
    """
    from mir_eval.separation import bss_eval_sources

    references = np.asarray(references, np.float64)
    estimates = np.asarray(estimates, np.float64)
    mixture = np.asarray(mixture, np.float64)
    if references.shape != estimates.shape or references.ndim != 2 or mixture.shape != references.shape[1:]:
        raise ValueError(f"Shapes do not match: references {references.shape}, estimates {estimates.shape}, "
                         f"mixture {mixture.shape}")
    num_sources = references.shape[0]
    results = [{**{metric: math.nan for metric in METRICS}, "undefined_metrics": [], "undefined_reason": []}
               for _ in range(num_sources)]
    silent_reference = np.mean(references ** 2, axis=1) <= SILENCE_MEAN_SQUARE
    silent_estimate = ~np.any(estimates, axis=1)
    active = np.flatnonzero(~silent_reference)
    if active.size:
        active_references = references[active]
        valid_estimates = np.where(silent_estimate[active, None], active_references, estimates[active])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mir_eval 0.8 warns about the function's removal in 0.9
            sdr, sir, sar, _ = bss_eval_sources(active_references, valid_estimates, compute_permutation=False)
            mixture_scores = None
            if not silent_reference.any() and np.any(mixture):
                mixture_scores = bss_eval_sources(active_references, np.tile(mixture, (active.size, 1)),
                                                  compute_permutation=False)
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
    for source, result in enumerate(results):
        result["undefined_metrics"] = [metric for metric in METRICS if math.isnan(result[metric])]
        result["undefined_reason"] = _undefined_reasons(source, silent_reference, silent_estimate, active.size,
                                                        np.any(mixture), result["undefined_metrics"])
    return results


def _undefined_reasons(source, silent_reference, silent_estimate, num_active, mixture_nonzero, undefined):
    if not undefined:
        return []
    if silent_reference[source]:
        return ["silent reference"]
    if silent_estimate[source]:
        return ["silent estimate"]
    reasons = []
    if "SIR" in undefined:
        reasons.append("no other non-silent reference (no interference to measure)")
    if "NSDR" in undefined:
        reasons.append("another reference is silent" if silent_reference.any() else "silent mixture")
    return reasons
