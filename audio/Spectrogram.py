"""Spectrograms of the signal layer: the STFT as librosa computes it, its inverse, and the
frequency padding the U-Net's valid convolutions need. Numpy only; ``Input`` re-exports these.

``num_fft`` samples per frame with a periodic Hann window, hop ``num_hop``, centred frames:
``num_fft // 2 + 1`` bins (257 for the paper's 512).
"""

import functools
from typing import Optional, Protocol, Tuple

import numpy as np
import scipy.fft


class WorkArrays(Protocol):
    """Work arrays reused from one read to the next (``pipeline.Sections.Scratch``)."""

    def array(self, name: str, shape: Tuple[int, ...], dtype: type) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``, valid until the next call with ``name``."""


def stft(audio: np.ndarray, num_fft: int, num_hop: int) -> np.ndarray:
    """Centred STFT with a periodic Hann window, as ``librosa.stft`` with default settings.

    ``audio``: float [samples]; ``num_fft``: window and FFT length, ``num_hop``: hop, in samples.

    Returns:
        complex64 ``[num_fft // 2 + 1, 1 + samples // num_hop]``; frame ``j`` is centred on
        sample ``j * num_hop`` (zeros are assumed outside the signal).
    """
    audio = np.asarray(audio, dtype=np.float32)
    half = num_fft // 2
    return _framed_stft(np.pad(audio, (half, half)), num_fft, num_hop)


def _framed_stft(audio, num_fft, num_hop) -> np.ndarray:
    """Un-centred STFT: frame ``j`` covers samples ``[j * num_hop, j * num_hop + num_fft)``.

    Returns complex64 ``[num_fft // 2 + 1, frames]`` (a transposed view).
    """
    return _frame_spectra(audio, num_fft, num_hop).T


def _frame_spectra(audio, num_fft, num_hop, scratch=None) -> np.ndarray:
    """complex64 ``[frames, num_fft // 2 + 1]`` spectra of the Hann-windowed frames of ``audio``.

    The frames are a strided view of the float32 audio; windowing them is the only copy (into
    the ``"windowed"`` array of a scratch, ``pipeline.Sections.Scratch``, if given).
    ``scipy.fft`` rather than ``numpy.fft``: numpy's row-by-row transform of 512-sample frames is
    about ten times slower (1.2 vs 11 us per frame on the 2-core machine of bench/input_pipeline.py).
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if len(audio) < num_fft:
        audio = np.pad(audio, (0, num_fft - len(audio)))
    count = 1 + (len(audio) - num_fft) // num_hop
    step = audio.strides[0]
    frames = np.lib.stride_tricks.as_strided(audio, (count, num_fft), (num_hop * step, step), writeable=False)
    windowed = None if scratch is None else scratch.array("windowed", frames.shape, np.float32)
    windowed = np.multiply(frames, _hann(num_fft), out=windowed)
    return scipy.fft.rfft(windowed, axis=1, overwrite_x=True)


@functools.lru_cache(maxsize=8)
def _hann(num_fft):
    """Periodic Hann window (``scipy.signal.get_window("hann", num_fft)``), float32, read-only."""
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(num_fft) / num_fft)).astype(np.float32)
    window.flags.writeable = False
    return window


def frame_magnitudes(
    audio_with_margins: np.ndarray,
    num_fft: int,
    num_hop: int,
    out: Optional[np.ndarray] = None,
    scratch: Optional[WorkArrays] = None,
) -> np.ndarray:
    """float32 magnitudes of :func:`_framed_stft`, [num_fft // 2 + 1, frames], C-contiguous.

    ``out``: optional float32 array of that shape to write into (e.g. a slice of an item), so
    that no intermediate [bins, frames] array is allocated and copied. ``scratch``: optional
    ``pipeline.Sections.Scratch`` for the windowed frames.
    """
    spectra = _frame_spectra(audio_with_margins, num_fft, num_hop, scratch)
    if out is None:
        out = np.empty(spectra.shape[::-1], np.float32)
    return np.abs(spectra.T, out=out)


def istft(magnitude: np.ndarray, phase: np.ndarray, num_hop: int, length: int) -> np.ndarray:
    """Inverse of :func:`stft` from magnitudes and phases (``librosa.istft``, Hann, centred).

    Args:
        magnitude: linear magnitudes [num_fft // 2 + 1, frames] (frequency padding removed).
        phase: the phase, same shape (typically the mixture's): angles in radians (real), or
            unit phasors ``exp(1j * angle)`` (complex, see :func:`unit_phasors`), which is
            faster when one phase serves several sources.
        num_hop, length: hop and output length in samples (the signal is cut or zero-padded to it).

    Returns:
        float32 audio [length].
    """
    import librosa  # heavy import, only needed where audio is reconstructed

    magnitude, phase = np.asarray(magnitude, np.float32), np.asarray(phase)
    if magnitude.shape != phase.shape or magnitude.ndim != 2:
        raise ValueError(
            f"istft needs magnitude and phase of the same [freq, frames] shape, got {magnitude.shape} and {phase.shape}"
        )
    phasors = phase.astype(np.complex64, copy=False) if np.iscomplexobj(phase) else np.exp(1j * phase)
    spectrogram = (magnitude * phasors).astype(np.complex64, copy=False)
    num_fft = 2 * (magnitude.shape[0] - 1)
    return librosa.istft(spectrogram, hop_length=num_hop, n_fft=num_fft, length=int(length)).astype(np.float32)


def unit_phasors(spectrogram: np.ndarray) -> np.ndarray:
    """complex64 ``exp(1j * angle(spectrogram))`` of a complex [freq, frames] spectrogram;
    1 where the spectrogram is 0 (as ``np.angle`` gives 0 there)."""
    spectrogram = np.asarray(spectrogram, np.complex64)
    magnitude = np.abs(spectrogram)
    phasors = np.ones_like(spectrogram)
    np.divide(spectrogram, magnitude, out=phasors, where=magnitude > 0)
    return phasors


def _frequency_axis(rank: int) -> int:
    if rank == 2:
        return 0
    if rank == 4:
        return 1
    raise ValueError(f"expected a [freq, frames] or [batch, freq, frames, channels] array, got rank {rank}")


def padding_rows(bins: int, height: int) -> Tuple[int, int]:
    """Zero rows ``(before, after)`` that centre ``bins`` in ``height``; odd remainder after."""
    if height < bins:
        raise ValueError(f"cannot pad {bins} frequency bins to a smaller height {height}")
    before = (height - bins) // 2
    return before, height - bins - before


def pad_freqs(spec: np.ndarray, height: int) -> np.ndarray:
    """Zero-pad the frequency axis to ``height`` rows (equal rows on both sides, odd one at the end).

    Args:
        spec: numpy array [freq, frames] or [batch, freq, frames, channels].
        height: rows wanted, e.g. 350 for the U-Net input or 258 for its output.
    """
    rank = len(spec.shape)
    axis = _frequency_axis(rank)
    before, after = padding_rows(int(spec.shape[axis]), height)
    paddings = [(0, 0)] * rank
    paddings[axis] = (before, after)
    return np.pad(spec, paddings)


def unpad_freqs(spec: np.ndarray, num_bins: int) -> np.ndarray:
    """Undo :func:`pad_freqs`: keep the ``num_bins`` rows it placed (a view of ``spec``)."""
    axis = _frequency_axis(len(spec.shape))
    before, _ = padding_rows(num_bins, int(spec.shape[axis]))
    index = [slice(None)] * len(spec.shape)
    index[axis] = slice(before, before + num_bins)
    return spec[tuple(index)]
