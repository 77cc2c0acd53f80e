"""Full-band separation: the model's estimates as soft masks on the input's own STFT.

The separator sees the mono down-mix at ``expected_sr`` (8192 Hz: nothing above 4096 Hz). To
give back audio at the input's rate, with its channels and its whole band, the model's source
magnitudes become soft masks (each source's share of their sum, so the masks add up to 1 in
every time-frequency cell) that are carried over to the STFT of each input channel:

- **Grid.** The input's STFT has the model's window *duration* at the input's rate
  (:func:`input_grid`: 62.5 ms windows and 31.25 ms hops for the paper's 512/256 at 8192 Hz,
  2756/1378 samples at 44.1 kHz), so bins are as wide and frames as long as the model's. The
  masks are interpolated linearly in time (frame centres) and frequency (bin centres); a
  convex combination of masks that add up to 1 adds up to 1 again.
- **Above the model's band.** The resampler to ``expected_sr`` (soxr HQ) passes the band up to
  about 93 % of the model's Nyquist frequency and removes what lies above (-3 dB at 3.9 kHz,
  -28 dB at 4 kHz, -86 dB at 4.09 kHz for 8192 Hz), so the model's masks are only trusted up
  to ``RELIABLE_FRACTION`` (90 %, 3686 Hz) of its Nyquist frequency. Above the model's Nyquist
  frequency each frame uses one mask per source: the source's share of the estimated
  magnitudes in the half octave below that limit (2606-3686 Hz), the highest band the model
  sees reliably. Between the two limits the masks cross-fade linearly. The high band thus
  follows, frame by frame, which source dominates the top of the model's band: sibilants and
  breath go with the voice where it leads there, cymbals with the accompaniment.
- **Sum.** Every source's STFT is ``mask * X`` for the channel's STFT ``X``; as the masks add up
  to 1 and the inverse STFT is linear, the sources add up to the input (to float rounding).

The inputs are what ``Input.read_audio`` gives at the file's own rate (clipped to [-1, 1]).
"""

import math
from typing import Dict, Mapping, Tuple

import numpy as np
import soxr

import Input
from common.Config import Signal

RELIABLE_FRACTION = 0.9  # of the model's Nyquist frequency: the top of the band the model's masks are trusted in
EXTENSION_OCTAVES = 0.5  # width of the band below that limit whose share sets the masks above the model's band


def input_grid(sample_rate: int, signal: Signal) -> Tuple[int, int]:
    """``(num_fft, num_hop)`` in samples at ``sample_rate`` Hz with the model's window and hop durations.

    ``num_fft`` is rounded to an even number (at least 2) so that the inverse STFT knows it from
    the number of bins; ``num_hop`` keeps the model's hop-to-window ratio (at least 1).
    """
    scale = sample_rate / float(signal.expected_sr)
    num_fft = max(2, 2 * int(round(signal.num_fft * scale / 2)))
    num_hop = max(1, int(round(num_fft * signal.num_hop / signal.num_fft)))
    return num_fft, num_hop


def model_input(audio: np.ndarray, sample_rate: int, expected_sr: int) -> np.ndarray:
    """The model's mono input of ``audio`` ``[channels, samples]`` at ``sample_rate`` Hz.

    The channels' mean, resampled to ``expected_sr`` with soxr (high quality) as ``Input`` does,
    clipped to [-1, 1]; float32 ``[round(samples * expected_sr / sample_rate)]``.
    """
    mono = np.ascontiguousarray(np.mean(np.asarray(audio, np.float32), axis=0), np.float32)
    length = int(round(mono.shape[0] * expected_sr / sample_rate))
    if sample_rate != expected_sr and mono.shape[0]:
        mono = soxr.resample(mono, sample_rate, expected_sr, quality="HQ").astype(np.float32, copy=False)
    return np.clip(Input.fit_length(mono, length), -1.0, 1.0)


def shares(magnitudes: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Each source's share of the sum of all sources' magnitudes (same shape as the inputs).

    Negative values count as 0; where every source is 0 the shares are equal (``1 / sources``),
    so the shares add up to 1 everywhere.
    """
    names = list(magnitudes)
    values = [np.maximum(np.asarray(magnitudes[name], np.float32), 0.0) for name in names]
    total = np.sum(values, axis=0)
    result = {}
    for name, value in zip(names, values):
        share = np.full(total.shape, 1.0 / len(names), np.float32)
        np.divide(value, total, out=share, where=total > 0)
        result[name] = share
    return result


def transfer_masks(
    estimates: Mapping[str, np.ndarray], signal: Signal, sample_rate: int, num_bins: int, num_frames: int
) -> Dict[str, np.ndarray]:
    """Soft masks on the input's STFT grid from the model's source magnitudes.

    Args:
        estimates: ``{source: linear magnitudes [F, T]}`` on the model's grid (``expected_sr``,
            ``num_fft``, ``num_hop``), e.g. from ``Separation.separate_spectrogram``.
        signal: the model's ``expected_sr``, ``num_fft`` and ``num_hop`` (``ModelConfig.signal``).
        sample_rate: the input's rate in Hz; its grid is :func:`input_grid`.
        num_bins, num_frames: the input STFT's shape ``[num_bins, num_frames]``.

    Returns:
        ``{source: float32 mask [num_bins, num_frames]}``, values in [0, 1], adding up to 1 in every
        cell (see the module's docstring for the rule above the model's band).
    """
    model_sr, model_fft, model_hop = signal.expected_sr, signal.num_fft, signal.num_hop
    input_fft, input_hop = input_grid(sample_rate, signal)
    model_bins, model_frames = np.shape(next(iter(estimates.values())))
    frequencies = np.arange(num_bins) * (sample_rate / input_fft)
    nyquist = model_sr / 2.0
    reliable = RELIABLE_FRACTION * nyquist
    model_masks = shares(estimates)
    band = _band_rows(model_bins, model_sr / model_fft, reliable * 2.0**-EXTENSION_OCTAVES, reliable)
    high_masks = shares(
        {
            name: np.sum(np.asarray(estimate, np.float32)[band], axis=0, keepdims=True)
            for name, estimate in estimates.items()
        }
    )
    blend = np.clip((frequencies - reliable) / (nyquist - reliable), 0.0, 1.0).astype(np.float32)[:, np.newaxis]
    frame_positions = np.arange(num_frames) * (input_hop / sample_rate) * (model_sr / model_hop)
    bin_positions = frequencies * (model_fft / model_sr)
    masks = {}
    for name in estimates:
        low = _interpolate(_interpolate(model_masks[name], bin_positions, axis=0), frame_positions, axis=1)
        high = _interpolate(high_masks[name], frame_positions, axis=1)
        masks[name] = (1.0 - blend) * low + blend * high
    return masks


def _band_rows(num_bins, bin_hz, low_hz, high_hz):
    """Rows of the model's bins whose centre lies in ``[low_hz, high_hz]`` (at least one row)."""
    first = min(int(math.ceil(low_hz / bin_hz)), num_bins - 1)
    last = min(int(math.floor(high_hz / bin_hz)), num_bins - 1)
    return slice(first, max(last, first) + 1)


def _interpolate(values, positions, axis):
    """Linear interpolation of ``values`` along ``axis`` at fractional indices ``positions``
    (held constant beyond the first and last index)."""
    size = values.shape[axis]
    positions = np.clip(positions, 0.0, size - 1)
    below = np.minimum(np.floor(positions).astype(np.int64), size - 1)
    above = np.minimum(below + 1, size - 1)
    weight = (positions - below).astype(np.float32)
    shape = [1, 1]
    shape[axis] = -1
    weight = weight.reshape(shape)
    return np.take(values, below, axis=axis) * (1.0 - weight) + np.take(values, above, axis=axis) * weight


def apply_masks(
    audio: np.ndarray, sample_rate: int, estimates: Mapping[str, np.ndarray], signal: Signal
) -> Dict[str, np.ndarray]:
    """Split ``audio`` ``[channels, samples]`` at ``sample_rate`` Hz with the model's estimates.

    Args:
        audio: the input, float ``[channels, samples]`` at its own rate.
        sample_rate: its rate in Hz.
        estimates: ``{source: linear magnitudes [F, T]}`` of the model for the mono down-mix of
            ``audio`` at ``expected_sr`` (:func:`model_input`).
        signal: the model's ``expected_sr``, ``num_fft`` and ``num_hop`` (``ModelConfig.signal``).

    Returns:
        ``{source: float32 [channels, samples]}`` at ``sample_rate``, adding up to ``audio``.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"apply_masks expects audio [channels, samples], got shape {audio.shape}")
    num_fft, num_hop = input_grid(sample_rate, signal)
    channels, samples = audio.shape
    outputs = {name: np.zeros((channels, samples), np.float32) for name in estimates}
    masks = None
    for channel in range(channels):
        spectrogram = Input.stft(audio[channel], num_fft, num_hop)
        if masks is None:  # every channel has the same grid
            masks = transfer_masks(estimates, signal, sample_rate, *spectrogram.shape)
        magnitude, phase = np.abs(spectrogram), Input.unit_phasors(spectrogram)
        for name, mask in masks.items():
            outputs[name][channel] = Input.istft(mask * magnitude, phase, num_hop, samples)
    return outputs
