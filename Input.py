"""Audio reading, spectrogram helpers and the cached batch generators that feed training.

Signal representation (PAPER.md): audio is down-mixed to mono, resampled to ``expected_sr``
(8192 Hz) with soxr and clipped to [-1, 1]; a centred STFT with a Hann window of ``num_fft``
(512) samples and hop ``num_hop`` (256) gives ``num_fft // 2 + 1`` (257) frequency bins.
The batch generators return *linear* magnitudes (float32); the TF graph applies
:func:`normalise` (``log1p``) itself. The frequency axis is zero-padded to the U-Net's height
with :func:`pad_freqs` (equal rows on both sides, an odd remainder at the end).

Data pipeline: worker processes read random sections of ``duration`` seconds (plus the
mixture's time context) of random songs, compute their magnitudes and write them into
shared-memory slots; the main process keeps a cache of ``cache_size`` of these slots and
draws every batch from random windows of random cache items, replacing on average at least
``min_replacement_rate`` items per batch (a replacement swaps slot numbers: items are never
copied before the batch is assembled). Heavy modules (TensorFlow, librosa) are never imported
here at module level so worker start-up stays cheap.

Reading costs, per paired item of 10 s plus context at the paper's settings (CPU ms, from
bench/input_pipeline.py): about 28 from 44.1 kHz stereo files; about 4 from copies already at
``expected_sr`` and mono (AudioCache.model_rate_dataset), where nothing is resampled or
down-mixed; about 0.4 when the files' whole magnitude spectrograms are precomputed
(AudioCache.magnitude_store, the generators' ``magnitudes`` argument) and sections are copied
from them instead of being transformed.
"""

import collections
import contextlib
import dataclasses
import functools
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
import traceback
import types
import weakref
from typing import Iterator, List, Tuple

import numpy as np
import scipy.fft
import soundfile
import soxr

LOGGER = logging.getLogger(__name__)

# Formats libsndfile decodes with seeking; anything else is decoded by audioread (ffmpeg).
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# Extra input samples (at the file's rate) read on each side of a section before
# resampling, so the resampler's edge transient falls outside the kept samples.
RESAMPLE_MARGIN_SECONDS = 0.02
# Smoothing of the running average of cache replacements per batch (as the reference).
REPLACEMENT_SMOOTHING = 0.99
# How often blocked waits wake up to check that the worker processes are alive.
POLL_SECONDS = 0.25
# Per-process budget for joining a worker at shutdown before it is killed.
JOIN_SECONDS = 2.0
# Workers read in the background: under CPU contention the trainer (and batch drawing) in the
# main process goes first; get_batch still blocks for fresh items when the replacement rate
# would fall below min_replacement_rate, which then leaves the CPU to the workers.
WORKER_NICENESS = 5


class UnreadableAudioError(RuntimeError):
    """An audio file cannot be opened or decoded; ``path`` names it."""

    def __init__(self, path, reason):
        super().__init__(f"Cannot read audio file {path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        # Rebuilt from (path, reason), not from the message, so that it survives the trip
        # from a worker process (concurrent.futures, multiprocessing) to the parent.
        return type(self), (self.path, self.reason)


class NonFiniteAudioError(UnreadableAudioError):
    """An audio file holds NaN or infinite samples; the message names the file and the time.

    Unlike a file that cannot be decoded, such a file is never skipped: training on it, or
    writing separations of it, would silently produce garbage, so every reader stops.
    """


def check_finite(audio, path, sample_rate, first_frame=0, unit="sample"):
    """Raise :class:`NonFiniteAudioError` if ``audio`` holds a NaN or an infinite value.

    Args:
        audio: array [frames] or [frames, channels] (``unit="sample"``), or a magnitude
            spectrogram [frames, bins] (``unit="frame"``).
        path: the file ``audio`` was read from (named in the error).
        sample_rate: frames per second of ``audio`` (samples/s, or STFT frames/s).
        first_frame: index in the file of ``audio``'s first frame, so the error gives the time
            in the file.
        unit: what a frame is called in the message.
    """
    finite = np.isfinite(audio)
    if finite.all():
        return
    if finite.ndim > 1:
        finite = finite.reshape(len(finite), -1).all(axis=1)
    index = first_frame + int(np.argmin(finite))
    value = np.asarray(audio).reshape(len(finite), -1)[index - first_frame]
    bad = value[~np.isfinite(value)][0]
    raise NonFiniteAudioError(path, f"{unit} {index} (at {index / sample_rate:.3f} s) is {bad}; the file "
                                    "holds non-finite values. Repair or remove it from the dataset")


# ----------------------------------------------------------------------------------------
# Reading audio
# ----------------------------------------------------------------------------------------

def read_audio(path, expected_sr, mono_downmix=True, offset=0.0, duration=None,
               padding_duration=0.0) -> np.ndarray:
    """Read a file, or a section of it, resampled to ``expected_sr``.

    The span read is ``[offset - padding_duration, offset + duration + padding_duration]``
    seconds; the parts of it before the file's start or past its end are zeros. WAV, FLAC,
    OGG and AIFF are read with seeking (only the span is decoded); other formats are decoded
    with audioread (ffmpeg).

    Args:
        path: audio file.
        expected_sr: output sample rate in Hz.
        mono_downmix: average the channels to one.
        offset: start of the requested span in seconds (may be negative: zeros).
        duration: length of the requested span in seconds; None reads to the file's end.
        padding_duration: context in seconds added on both sides of the span.

    Returns:
        float32 audio in [-1, 1] at ``expected_sr``: ``[samples]`` when ``mono_downmix``,
        else ``[channels, samples]``. With ``duration`` given it has exactly
        ``round((duration + 2 * padding_duration) * expected_sr)`` samples.

    Raises:
        UnreadableAudioError: the file is missing, corrupt or in a format no decoder reads.
    """
    start = int(round((offset - padding_duration) * expected_sr))
    if duration is None:
        audio = _read_span(path, expected_sr, mono_downmix, start, None)
        padding = int(round(padding_duration * expected_sr))
        return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, padding)]) if padding > 0 else audio
    length = int(round((duration + 2 * padding_duration) * expected_sr))
    return _read_span(path, expected_sr, mono_downmix, start, length)


def read_random_section(path, expected_sr, mono_downmix, duration, padding_duration, rng,
                        file_duration=None) -> Tuple[np.ndarray, float]:
    """Read a random ``duration``-second section widened by ``padding_duration`` each side.

    The un-padded centre ``[offset, offset + duration]`` lies inside the file whenever the file
    is long enough (else it starts at 0 and its end is zero-padded); the context on each side
    is real audio where the file has it and zeros past its start or end.

    Args:
        path, expected_sr, mono_downmix: as :func:`read_audio`.
        duration: seconds of the centre section.
        padding_duration: seconds of context on each side.
        rng: ``numpy.random.Generator`` choosing the offset.
        file_duration: the file's length in seconds if known (e.g. ``Sample.duration``);
            read from the file otherwise.

    Returns:
        ``(audio, offset)``: audio as :func:`read_audio` of
        ``round((duration + 2 * padding_duration) * expected_sr)`` samples, and the centre's
        start in seconds, so that sources can be read with
        ``read_audio(source, expected_sr, mono_downmix, offset, duration)`` for the same span.
    """
    if file_duration is None:
        file_duration = audio_duration(path)
    offset = float(rng.uniform(0.0, max(file_duration - duration, 0.0)))
    return read_audio(path, expected_sr, mono_downmix, offset, duration, padding_duration), offset


def audio_duration(path) -> float:
    """Length of an audio file in seconds (header only where the format allows)."""
    with _open_audio(path) as audio_file:
        return audio_file.frames / audio_file.sample_rate


def check_file_finite(path, block_seconds=60.0):
    """Raise :class:`NonFiniteAudioError` if the file holds a NaN or infinite sample anywhere.

    Reads the file at its own rate in blocks of ``block_seconds`` (memory stays small for
    long files). Formats decoded by audioread (MP3, M4A, ...) decode to 16-bit integers,
    which are always finite, and are not read.

    Raises:
        UnreadableAudioError: the file cannot be read; NonFiniteAudioError naming the first
        bad sample's time.
    """
    with _open_audio(path) as audio_file:
        if isinstance(audio_file, _AudioreadReader):
            return
        block = max(int(block_seconds * audio_file.sample_rate), 1)
        for first in range(0, audio_file.frames, block):
            audio_file.read(first, min(block, audio_file.frames - first))


def _read_span(path, expected_sr, mono_downmix, start, length, scratch=None) -> np.ndarray:
    """Samples ``[start, start + length)`` at ``expected_sr`` (zeros outside the file).

    ``length`` None reads to the file's end. Returns float32 ``[samples]`` (mono) or
    ``[channels, samples]``, clipped to [-1, 1]. With a :class:`_Scratch`, a mono file at
    ``expected_sr`` (a model-rate copy) is read into its ``"audio"`` array, which is returned:
    valid until the scratch's next use.
    """
    with _open_audio(path) as audio_file:
        rate = audio_file.sample_rate
        if length is None:
            length = max(int(round(audio_file.frames * expected_sr / rate)) - start, 0)
        if rate == expected_sr:
            out = None
            if scratch is not None and audio_file.channels == 1:
                out = scratch.array("audio", (length,), np.float32)[:, np.newaxis]
            audio = _downmix(audio_file.read(start, length, out=out), mono_downmix)
        else:
            # Read a little more than needed at the file's rate, resample, then cut the span
            # out; zeros outside the file are resampled with it, as for a whole-file read.
            # The first sample read sits on the grid where both rates' sample times coincide,
            # so the kept samples are those of a whole-file resampling, not shifted by a
            # fraction of a sample.
            grid = rate // math.gcd(rate, expected_sr)  # input samples per grid step
            grid_out = expected_sr // math.gcd(rate, expected_sr)
            margin = int(math.ceil(RESAMPLE_MARGIN_SECONDS * rate))
            steps = (start * rate // expected_sr - margin) // grid
            first = steps * grid
            count = -(-(start + length) * rate // expected_sr) + margin - first
            resampled = _resample(_downmix(audio_file.read(first, count), mono_downmix), rate, expected_sr)
            shift = start - steps * grid_out
            audio = _fit_length(resampled[shift:shift + length], length)
            # Past the file's ends the resampler rings a little; the span is zeros there.
            file_end = int(round(audio_file.frames * expected_sr / rate)) - start
            audio[:max(-start, 0)] = 0.0
            audio[max(file_end, 0):] = 0.0
    np.clip(audio, -1.0, 1.0, out=audio)
    return audio if audio.ndim == 1 else np.ascontiguousarray(audio.T)


def _downmix(audio, mono_downmix):
    """[samples, channels] -> [samples] if mono_downmix (or a single channel), else unchanged.

    A single channel is returned as a view (no copy): files already at the model's rate and
    channel count cost nothing here.
    """
    if audio.ndim == 1 or not (mono_downmix or audio.shape[1] == 1):
        return audio
    if audio.shape[1] == 1:
        return audio[:, 0]
    mono = audio[:, 0].copy()
    for channel in range(1, audio.shape[1]):  # column sums: much faster than mean(axis=1)
        mono += audio[:, channel]
    mono *= np.float32(1.0 / audio.shape[1])
    return mono


def _resample(audio, rate, expected_sr):
    """Resample [samples] or [samples, channels] float32 audio with soxr (high quality)."""
    if audio.shape[0] == 0:
        return audio
    return soxr.resample(np.ascontiguousarray(audio), rate, expected_sr, quality="HQ").astype(np.float32, copy=False)


def _fit_length(audio, length):
    """Cut or zero-pad [samples, ...] audio to exactly ``length`` samples."""
    if audio.shape[0] >= length:
        return audio[:length]
    return np.pad(audio, [(0, length - audio.shape[0])] + [(0, 0)] * (audio.ndim - 1))


@contextlib.contextmanager
def _open_audio(path):
    """Open ``path`` for reading; yields a :class:`_SoundFileReader` or :class:`_AudioreadReader`.

    Any failure to open or decode raises :class:`UnreadableAudioError`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UnreadableAudioError(path, "the file does not exist")
    try:
        handle = soundfile.SoundFile(path)
    except (RuntimeError, OSError, ValueError) as error:
        if path.lower().endswith(SOUNDFILE_EXTENSIONS):
            raise UnreadableAudioError(path, f"corrupt or not a {os.path.splitext(path)[1]} file ({error})") from error
        reader = _AudioreadReader(path)
    else:
        reader = _SoundFileReader(path, handle)
    try:
        yield reader
    finally:
        reader.close()


class _SoundFileReader:
    """A libsndfile-readable file: reads frame ranges by seeking."""

    def __init__(self, path, handle):
        self.path, self._handle = path, handle
        self.sample_rate, self.channels, self.frames = handle.samplerate, handle.channels, handle.frames

    def read(self, first, count, out=None):
        """Frames ``[first, first + count)`` as float32 [count, channels]; zeros outside the file.

        ``out``: optional float32 [count, channels] array to fill and return.
        """
        begin, end = max(first, 0), min(first + count, self.frames)
        if out is None:
            out = np.zeros((count, self.channels), np.float32)
        else:
            out[:max(begin - first, 0)] = 0.0
            out[max(end - first, 0):] = 0.0
        if end > begin:
            target = out[begin - first:end - first]
            try:
                self._handle.seek(begin)
                got = len(self._handle.read(out=target))
            except (RuntimeError, OSError, ValueError) as error:
                raise UnreadableAudioError(self.path, f"decoding failed ({error})") from error
            target[got:] = 0.0  # a short read (truncated file) leaves zeros, also in a reused ``out``
            check_finite(target[:got], self.path, self.sample_rate, first_frame=begin)
        return out

    def close(self):
        self._handle.close()


class _AudioreadReader:
    """A file decoded with audioread (MP3, M4A, ...): decodes from the start on every read."""

    def __init__(self, path):
        import audioread  # only needed for formats libsndfile cannot read

        self.path, self._audioread = path, audioread
        try:
            with audioread.audio_open(path) as decoder:
                self.sample_rate, self.channels = decoder.samplerate, decoder.channels
                self.frames = int(round(decoder.duration * decoder.samplerate))
        except (audioread.DecodeError, EOFError, OSError, ValueError) as error:
            raise UnreadableAudioError(path, f"no installed decoder can read it ({error!r}); install ffmpeg "
                                             "or convert it to WAV/FLAC") from error

    def read(self, first, count, out=None):
        """As :meth:`_SoundFileReader.read` (decoding stops after the requested range)."""
        blocks, decoded, end = [], 0, first + count
        try:
            with self._audioread.audio_open(self.path) as decoder:
                for buffer in decoder:
                    block = np.frombuffer(buffer, "<i2").reshape(-1, self.channels)
                    lo, hi = max(first - decoded, 0), min(end - decoded, len(block))
                    if hi > lo:
                        blocks.append(block[lo:hi].astype(np.float32) / 32768.0)
                    decoded += len(block)
                    if decoded >= end:
                        break
        except (self._audioread.DecodeError, EOFError, OSError, ValueError) as error:
            raise UnreadableAudioError(self.path, f"decoding failed ({error!r})") from error
        data = np.concatenate(blocks) if blocks else np.zeros((0, self.channels), np.float32)
        leading = np.zeros((max(-first, 0), self.channels), np.float32)
        audio = _fit_length(np.concatenate([leading, data]), count)
        if out is None:
            return audio
        out[...] = audio
        return out

    def close(self):
        pass


# ----------------------------------------------------------------------------------------
# Spectrograms
# ----------------------------------------------------------------------------------------

def stft(audio, num_fft, num_hop) -> np.ndarray:
    """Centred STFT with a periodic Hann window, as ``librosa.stft`` with default settings.

    Args:
        audio: float [samples].
        num_fft: window and FFT length in samples.
        num_hop: hop in samples.

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
    the ``"windowed"`` array of a :class:`_Scratch` if given).
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


def _magnitudes(audio_with_margins, num_fft, num_hop, out=None, scratch=None) -> np.ndarray:
    """float32 magnitudes of :func:`_framed_stft`, [num_fft // 2 + 1, frames], C-contiguous.

    ``out``: optional float32 array of that shape to write into (e.g. a slice of an item), so
    that no intermediate [bins, frames] array is allocated and copied. ``scratch``: optional
    :class:`_Scratch` for the windowed frames.
    """
    spectra = _frame_spectra(audio_with_margins, num_fft, num_hop, scratch)
    if out is None:
        out = np.empty(spectra.shape[::-1], np.float32)
    return np.abs(spectra.T, out=out)


def istft(magnitude, phase, num_hop, length) -> np.ndarray:
    """Inverse of :func:`stft` from magnitudes and phases (``librosa.istft``, Hann, centred).

    Args:
        magnitude: linear magnitudes [num_fft // 2 + 1, frames] (frequency padding removed).
        phase: the phase, same shape (typically the mixture's): angles in radians (real), or
            unit phasors ``exp(1j * angle)`` (complex, see :func:`unit_phasors`), which is
            faster when one phase serves several sources.
        num_hop: hop in samples.
        length: number of output samples (the signal is cut or zero-padded to it).

    Returns:
        float32 audio [length].
    """
    import librosa  # heavy import, only needed where audio is reconstructed

    magnitude, phase = np.asarray(magnitude, np.float32), np.asarray(phase)
    if magnitude.shape != phase.shape or magnitude.ndim != 2:
        raise ValueError(f"istft needs magnitude and phase of the same [freq, frames] shape, "
                         f"got {magnitude.shape} and {phase.shape}")
    phasors = phase.astype(np.complex64, copy=False) if np.iscomplexobj(phase) else np.exp(1j * phase)
    spectrogram = (magnitude * phasors).astype(np.complex64, copy=False)
    num_fft = 2 * (magnitude.shape[0] - 1)
    return librosa.istft(spectrogram, hop_length=num_hop, n_fft=num_fft, length=int(length)).astype(np.float32)


def unit_phasors(spectrogram) -> np.ndarray:
    """complex64 ``exp(1j * angle(spectrogram))`` of a complex [freq, frames] spectrogram;
    1 where the spectrogram is 0 (as ``np.angle`` gives 0 there)."""
    spectrogram = np.asarray(spectrogram, np.complex64)
    magnitude = np.abs(spectrogram)
    phasors = np.ones_like(spectrogram)
    np.divide(spectrogram, magnitude, out=phasors, where=magnitude > 0)
    return phasors


def _is_tf_tensor(value):
    tf = sys.modules.get("tensorflow")  # a tf tensor can only exist once tf was imported
    return tf is not None and tf.is_tensor(value)


def normalise(magnitude):
    """``log(1 + magnitude)`` for numpy arrays or TensorFlow tensors (same type out)."""
    if _is_tf_tensor(magnitude):
        return sys.modules["tensorflow"].math.log1p(magnitude)
    return np.log1p(magnitude)


def denormalise(log_magnitude):
    """``exp(log_magnitude) - 1``, the inverse of :func:`normalise` (numpy or TensorFlow)."""
    if _is_tf_tensor(log_magnitude):
        return sys.modules["tensorflow"].math.expm1(log_magnitude)
    return np.expm1(log_magnitude)


def _frequency_axis(rank):
    if rank == 2:
        return 0
    if rank == 4:
        return 1
    raise ValueError(f"expected a [freq, frames] or [batch, freq, frames, channels] array, got rank {rank}")


def _padding_rows(bins, height):
    """Zero rows ``(before, after)`` that centre ``bins`` in ``height``; odd remainder after."""
    if height < bins:
        raise ValueError(f"cannot pad {bins} frequency bins to a smaller height {height}")
    before = (height - bins) // 2
    return before, height - bins - before


def pad_freqs(spec, height):
    """Zero-pad the frequency axis to ``height`` rows (equal rows on both sides, odd one at the end).

    Args:
        spec: [freq, frames] or [batch, freq, frames, channels]; numpy or TensorFlow.
        height: rows wanted, e.g. 350 for the U-Net input or 258 for its output.
    """
    rank = len(spec.shape)
    axis = _frequency_axis(rank)
    before, after = _padding_rows(int(spec.shape[axis]), height)
    paddings = [(0, 0)] * rank
    paddings[axis] = (before, after)
    if _is_tf_tensor(spec):
        return sys.modules["tensorflow"].pad(spec, paddings)
    return np.pad(spec, paddings)


def unpad_freqs(spec, num_bins):
    """Undo :func:`pad_freqs`: keep the ``num_bins`` rows it placed (numpy or TensorFlow)."""
    axis = _frequency_axis(len(spec.shape))
    before, _ = _padding_rows(num_bins, int(spec.shape[axis]))
    index = [slice(None)] * len(spec.shape)
    index[axis] = slice(before, before + num_bins)
    return spec[tuple(index)]


def crop(tensor, target_shape):
    """Centre-crop a [batch, freq, frames, channels] array or tensor along freq and frames.

    Args:
        tensor: numpy array or TensorFlow tensor (batch size may be unknown).
        target_shape: ``[batch, freq, frames, channels]`` (only freq and frames are used) or
            ``(freq, frames)``. An odd difference leaves the extra row/frame at the end.

    Returns:
        ``tensor[:, f0:f0 + freq, t0:t0 + frames, :]`` with ``f0 = (F - freq) // 2`` etc.
    """
    shape = [int(size) for size in tensor.shape[1:3]]
    target = [int(size) for size in (target_shape[1:3] if len(target_shape) == 4 else target_shape)]
    if len(target) != 2 or any(t > s for t, s in zip(target, shape)):
        raise ValueError(f"cannot crop a tensor of shape {list(tensor.shape)} to {list(target_shape)}")
    (f0, t0) = [(s - t) // 2 for s, t in zip(shape, target)]
    return tensor[:, f0:f0 + target[0], t0:t0 + target[1], :]


# ----------------------------------------------------------------------------------------
# Sections: what one cache item holds
# ----------------------------------------------------------------------------------------

def is_silent(entry) -> bool:
    """True for a source a song lacks: ``None`` or an object with a true ``silent`` attribute."""
    return entry is None or bool(getattr(entry, "silent", False))


class _Scratch:
    """Work arrays reused from one item to the next, one buffer per name (not pickled).

    Reading an item touches a few MB of temporary arrays; freshly allocated, their pages fault
    in on every item (~450 page faults, ~35 % of an item's CPU time at the paper's shapes).
    """

    def __init__(self):
        self._buffers = {}

    def array(self, name, shape, dtype):
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``: a view of the
        buffer ``name``, which grows when needed. Valid until the next call with this name."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.dtype != dtype or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size, dtype)
        return buffer[:size].reshape(shape)

    def __getstate__(self):
        return {}  # buffers belong to one process

    def __setstate__(self, state):
        self._buffers = {}


@dataclasses.dataclass(frozen=True)
class SectionGeometry:
    """Sample and frame layout of one cached section.

    A section has ``centre_frames`` STFT frames (the span windows are drawn from) and, for the
    mixture, ``context_frames`` extra frames on each side. Frame ``i`` of the centre is
    centred on sample ``(first_frame + i) * num_hop`` of the song at ``expected_sr``, which
    is the frame grid of the whole song's centred STFT.
    """

    expected_sr: int
    num_fft: int
    num_hop: int
    centre_frames: int
    context_frames: int

    @property
    def bins(self):
        return self.num_fft // 2 + 1

    def song_frames(self, seconds):
        """Frames of the whole song's centred STFT."""
        return 1 + int(round(seconds * self.expected_sr)) // self.num_hop

    def read_magnitudes(self, path, first_frame, frames, context, song_frames, out=None, scratch=None):
        """float32 [bins, frames + 2 * context] magnitudes, frame 0 centred at
        ``(first_frame - context) * num_hop``.

        Frames outside the song's frame grid ``[0, song_frames)`` are zeros, exactly as the
        zero padding of a whole song's spectrogram at evaluation time. ``out``: optional
        float32 array of that shape to fill (and return) instead of a new one; ``scratch``:
        optional :class:`_Scratch` for the temporary arrays.
        """
        total = frames + 2 * context
        start = (first_frame - context) * self.num_hop - self.num_fft // 2
        length = (total - 1) * self.num_hop + self.num_fft
        audio = _read_span(path, self.expected_sr, True, start, length, scratch)
        magnitudes = _magnitudes(audio, self.num_fft, self.num_hop, out=out, scratch=scratch)
        magnitudes[:, :max(context - first_frame, 0)] = 0.0
        magnitudes[:, max(song_frames - first_frame + context, 0):] = 0.0
        return magnitudes

    def random_first_frame(self, song_frames, rng):
        """A random first centre frame so the section lies inside the song when it fits.

        Returns ``(first_frame, valid_frames)``: ``valid_frames`` < ``centre_frames`` only for
        songs shorter than a section (the rest of the section is zeros).
        """
        first = int(rng.integers(0, max(song_frames - self.centre_frames, 0) + 1))
        return first, min(self.centre_frames, song_frames - first)


class _SectionReader:
    """What both readers share: where magnitudes come from.

    Args:
        entries: the songs or samples the reader draws from.
        geometry: the :class:`SectionGeometry` of one item.
        magnitudes: optional store of precomputed whole-file magnitudes
            (``AudioCache.MagnitudeStore``); files it holds are read from it, any other file
            is read as audio and transformed.
    """

    def __init__(self, entries, geometry, magnitudes=None):
        self.entries, self.geometry, self._magnitudes = list(entries), geometry, magnitudes
        if magnitudes is not None and magnitudes.bins != geometry.bins:
            raise ValueError(f"The magnitude store has {magnitudes.bins} frequency bins, num_fft={geometry.num_fft} "
                             f"gives {geometry.bins}: build it with the generator's num_fft")
        self._scratch = _Scratch()

    def _read_magnitudes(self, path, first_frame, frames, context, song_frames, out):
        """Section magnitudes into ``out`` [bins, frames + 2 * context], as
        :meth:`SectionGeometry.read_magnitudes`."""
        if self._magnitudes is not None and path in self._magnitudes:
            raw = self._scratch.array("stored", ((frames + 2 * context) * self.geometry.bins,), np.float32)
            return self._magnitudes.read_frames(path, first_frame - context, out, raw)
        return self.geometry.read_magnitudes(path, first_frame, frames, context, song_frames, out, self._scratch)


class _PairedReader(_SectionReader):
    """Reads aligned (mixture with context, sources) sections of random songs."""

    def __init__(self, songs, geometry, magnitudes=None):
        super().__init__(songs, geometry, magnitudes)
        self.num_sources = len(self.entries[0]) - 1
        g = geometry
        self.item_shapes = [(g.bins, g.centre_frames + 2 * g.context_frames),
                            (self.num_sources, g.bins, g.centre_frames)]

    def read(self, index, rng, out=None):
        """Returns ``([mixture [F, N + 2c], sources [K, F, N]], valid_frames)``; the arrays are
        ``out`` (a list of arrays of ``item_shapes``, e.g. shared-memory slots) if given."""
        mixture, *sources = self.entries[index]
        g = self.geometry
        mix, separated = out if out is not None else [np.empty(shape, np.float32) for shape in self.item_shapes]
        song_frames = g.song_frames(mixture.duration)
        first, valid = g.random_first_frame(song_frames, rng)
        self._read_magnitudes(mixture.path, first, g.centre_frames, g.context_frames, song_frames, mix)
        for k, source in enumerate(sources):
            if is_silent(source):
                separated[k] = 0.0
            else:
                self._read_magnitudes(source.path, first, g.centre_frames, 0, song_frames, separated[k])
        return [mix, separated], valid


class _SingleReader(_SectionReader):
    """Reads sections (with optional context) of random single files."""

    def __init__(self, samples, geometry, magnitudes=None):
        super().__init__(samples, geometry, magnitudes)
        g = geometry
        self.item_shapes = [(g.bins, g.centre_frames + 2 * g.context_frames)]

    def read(self, index, rng, out=None):
        """Returns ``([spectrogram [F, N + 2c]], valid_frames)``; the array is ``out[0]`` if given."""
        entry = self.entries[index]
        g = self.geometry
        spectrogram = out[0] if out is not None else np.empty(self.item_shapes[0], np.float32)
        if is_silent(entry):
            spectrogram[...] = 0.0
            return [spectrogram], g.centre_frames
        song_frames = g.song_frames(entry.duration)
        first, valid = g.random_first_frame(song_frames, rng)
        self._read_magnitudes(entry.path, first, g.centre_frames, g.context_frames, song_frames, spectrogram)
        return [spectrogram], valid


class _UnreadableFiles:
    """Entries that failed to read, warned about once per path."""

    def __init__(self, reader):
        self._reader = reader
        self.bad_entries, self._warned = set(), set()

    def report(self, index, path, reason):
        self.bad_entries.add(index)
        if path not in self._warned:
            self._warned.add(path)
            LOGGER.warning("Skipping unreadable audio file %s: %s", path, reason)
        if len(self.bad_entries) == len(self._reader.entries):
            raise RuntimeError(self.all_bad_message())

    def all_bad_message(self):
        listed = ", ".join(sorted(self._warned)[:5])
        return (f"None of the {len(self._reader.entries)} dataset entries could be read (e.g. {listed}); "
                "check that the dataset files exist and are valid audio")


def _read_good_item(reader, bad_entries, rng, on_unreadable, out=None):
    """Read one item of a random entry not in ``bad_entries``, skipping unreadable ones.

    ``on_unreadable(index, path, reason)`` is called for each newly failing entry; returns
    None when every entry has failed. ``out``: arrays of ``reader.item_shapes`` to read into.
    """
    while len(bad_entries) < len(reader.entries):
        index = int(rng.integers(len(reader.entries)))
        if index in bad_entries:
            continue
        try:
            return reader.read(index, rng, out)
        except NonFiniteAudioError:
            raise  # a file that decodes to garbage is never skipped silently
        except UnreadableAudioError as error:
            bad_entries.add(index)
            on_unreadable(index, error.path, error.reason)
    return None


# ----------------------------------------------------------------------------------------
# Item sources: worker processes or reading in the calling process
# ----------------------------------------------------------------------------------------

# Both sources hold items in *slots*: arrays ``views[part][slot]`` that the cache points at
# (see _CachedBatchGenerator). ``consume(slot, valid_frames)`` hands a freshly read slot to
# the cache and returns the slot the cache let go of (None while it fills), which is then
# free to be read into again. Items are never copied between reading and batching.

class _InlineSource:
    """Reads items in the calling process (``num_workers=0``): deterministic given the seed."""

    def __init__(self, reader, seed_sequence, unreadable, num_slots):
        self._reader, self._unreadable = reader, unreadable
        self._rng = np.random.default_rng(seed_sequence)
        self.views = [np.zeros((num_slots,) + tuple(shape), np.float32) for shape in reader.item_shapes]
        self._free_slots = collections.deque(range(num_slots))

    def drain(self, consume):
        return 0

    def wait_one(self, consume):
        slot = self._free_slots.popleft()
        item = _read_good_item(self._reader, self._unreadable.bad_entries, self._rng, self._unreadable.report,
                               [view[slot] for view in self.views])
        if item is None:
            self._free_slots.appendleft(slot)
            raise RuntimeError(self._unreadable.all_bad_message())
        freed = consume(slot, item[1])
        if freed is not None:
            self._free_slots.append(freed)

    def check(self):
        pass

    def pids(self):
        return []

    def close(self):
        pass


def _worker_main(reader, seed_sequence, slots, free_slots, messages, stop_event, name):
    """Body of a worker process: read random sections into free shared slots until stopped.

    Messages to the parent (all small, so a killed worker never leaves half a message):
    ``("item", slot, valid_frames)``, ``("unreadable", index, path, reason)``,
    ``("all_unreadable",)``, ``("non_finite", path, reason)`` and ``("error", name, traceback_text)``.
    """
    # Ctrl-C and SIGTERM are the parent's to handle (a scheduler signals every process of a job,
    # and the parent saves a checkpoint first); the parent's stop event or its death ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # os.nice is POSIX only
        os.nice(WORKER_NICENESS)
    parent = multiprocessing.parent_process()
    try:
        rng = np.random.default_rng(seed_sequence)
        views = _slot_views(slots, reader.item_shapes)
        bad_entries = set()

        def report(index, path, reason):
            messages.put(("unreadable", index, path, reason))

        while not stop_event.is_set():
            if parent is not None and not parent.is_alive():
                return  # orphaned (the parent was killed): nobody will stop us
            slot = _take_free_slot(free_slots, stop_event, parent)
            if slot is None:
                return
            # Read straight into the shared slot: no copy. A failed read leaves the slot
            # unannounced, and the next item overwrites it completely.
            item = _read_good_item(reader, bad_entries, rng, report, [view[slot] for view in views])
            if item is None:
                messages.put(("all_unreadable",))
                return
            messages.put(("item", slot, item[1]))
    except NonFiniteAudioError as error:
        messages.put(("non_finite", error.path, error.reason))
        sys.exit(1)
    except BaseException:  # report anything, then die: the parent turns it into an error
        messages.put(("error", name, traceback.format_exc()))
        sys.exit(1)


def _take_free_slot(free_slots, stop_event, parent):
    """Block until the parent frees a slot; None once stopped or orphaned."""
    while not stop_event.is_set():
        if parent is not None and not parent.is_alive():
            return None
        try:
            return free_slots.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
    return None


def _slot_views(slots, item_shapes):
    """numpy views [num_slots, *shape] on the shared float32 buffers."""
    return [np.frombuffer(buffer, dtype=np.float32).reshape((-1,) + tuple(shape))
            for buffer, shape in zip(slots, item_shapes)]


@contextlib.contextmanager
def main_script_hidden():
    """Hide the main script from multiprocessing while worker processes are being started.

    A spawned (or forkserver) child re-runs the parent's main script to recreate its
    ``__main__``; for Training.py that imports TensorFlow in every worker (seconds of CPU and
    ~250 MB each). Workers that only need library modules (this one, AudioCache, ...) should
    be started inside ``with main_script_hidden():``: the script is swapped for an empty
    module for the few milliseconds of ``Process.start``. The target function must live in an
    importable module, not in the main script. With ``concurrent.futures.ProcessPoolExecutor``
    the processes start during ``submit``, so submit the jobs inside the block.
    """
    main_module = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main_module


def worker_context():
    """The multiprocessing context for worker processes: forkserver, or spawn where there is none.

    TensorFlow in the parent is not fork-safe, so workers never come from a plain fork; use
    together with :func:`main_script_hidden`.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class _WorkerPool:
    """Worker processes writing items into shared-memory slots, announced by small messages."""

    def __init__(self, reader, seed_sequences, num_slots, unreadable, name):
        context = worker_context()
        self._reader, self._unreadable = reader, unreadable
        self._slots = [context.RawArray("f", num_slots * int(np.prod(shape))) for shape in reader.item_shapes]
        self.views = _slot_views(self._slots, reader.item_shapes)
        self._free_slots, self._messages = context.Queue(), context.Queue()
        self._stop_event = context.Event()
        for slot in range(num_slots):
            self._free_slots.put(slot)
        self._processes = [
            context.Process(target=_worker_main, name=f"{name}-worker-{index}", daemon=True,
                            args=(reader, seed, self._slots, self._free_slots, self._messages,
                                  self._stop_event, f"{name}-worker-{index}"))
            for index, seed in enumerate(seed_sequences)]
        self._finalizer = weakref.finalize(self, _shut_down, self._processes, self._stop_event,
                                           [self._free_slots, self._messages])
        try:
            with main_script_hidden():
                for process in self._processes:
                    process.start()
        except BaseException:
            self.close()
            raise

    def drain(self, consume):
        """Consume every item already announced; returns how many."""
        count = 0
        while self._next_message(timeout=None, consume=consume):
            count += 1
        return count

    def wait_one(self, consume):
        """Block until one item arrives; raises if a worker dies or all files are unreadable."""
        while not self._next_message(timeout=POLL_SECONDS, consume=consume):
            self.check()

    def _next_message(self, timeout, consume):
        """Handle messages until an item was consumed (True) or none is waiting (False)."""
        while True:
            try:
                message = self._messages.get(timeout=timeout) if timeout else self._messages.get_nowait()
            except queue.Empty:
                return False
            if message[0] == "item":
                _, slot, valid = message
                freed = consume(slot, valid)
                if freed is not None:
                    self._free_slots.put(freed)
                return True
            self._handle_control(message)

    def _handle_control(self, message):
        kind = message[0]
        if kind == "unreadable":
            _, index, path, reason = message
            self._unreadable.report(index, path, reason)
        elif kind == "all_unreadable":
            raise RuntimeError(self._unreadable.all_bad_message())
        elif kind == "non_finite":
            raise NonFiniteAudioError(message[1], message[2])
        elif kind == "error":
            raise RuntimeError(f"Input worker {message[1]} failed:\n{message[2]}")

    def check(self):
        """Raise RuntimeError (with the worker's traceback if it sent one) if a worker died."""
        dead = multiprocessing.connection.wait([p.sentinel for p in self._processes], timeout=0)
        if not dead:
            return
        deadline = time.monotonic() + 1.0  # its last message may still be on its way
        while time.monotonic() < deadline:
            try:
                message = self._messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if message[0] == "item":
                self._free_slots.put(message[1])
            else:
                self._handle_control(message)
        process = next(p for p in self._processes if p.sentinel in dead)
        process.join(timeout=0.1)
        raise RuntimeError(f"Input worker {process.name} (pid {process.pid}) died unexpectedly "
                           f"({_describe_exit(process.exitcode)}); see the log for its output")

    def pids(self):
        return [process.pid for process in self._processes]

    def close(self):
        self._finalizer()


def _describe_exit(exitcode):
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _shut_down(processes, stop_event, queues):
    """Stop and reap worker processes; also runs at interpreter exit if stop() was never called."""
    stop_event.set()  # workers ignore SIGTERM: they see this within POLL_SECONDS
    deadline = time.monotonic() + JOIN_SECONDS
    for process in processes:
        if process.pid is None:
            continue
        process.join(timeout=max(deadline - time.monotonic(), 0.05))
        if process.exitcode is None:
            process.kill()
            process.join(timeout=JOIN_SECONDS)
    for channel in queues:
        channel.cancel_join_thread()
        channel.close()


# ----------------------------------------------------------------------------------------
# Batch generators
# ----------------------------------------------------------------------------------------

def check_positive_int(value, name):
    """``value`` as an int if it is a positive integer (not a bool), else a ValueError naming ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_shape(shape, name):
    if len(tuple(shape)) != 2:
        raise ValueError(f"{name} must be a (freq rows, frames) pair, got {shape!r}")
    return tuple(check_positive_int(size, f"{name} entry") for size in shape)


class _CachedBatchGenerator:
    """Cache of spectrogram sections refreshed by workers; batches are random windows of it.

    The cache is a table of ``cache_size`` slot numbers: items stay in the slot they were read
    into (shared memory with worker processes), and replacing a cache item only swaps slot
    numbers. There are more slots than cache places, so the workers always have free slots
    to read the next items into while the cache is in use.

    Subclasses provide the reader (what one item is) and ``_assemble(slots, starts)``, which
    gathers the windows from ``self._views`` (one array ``[slot, *item_shape]`` per part).
    """

    def __init__(self, reader, batch_size, expected_sr, mono_downmix, num_fft, num_hop, duration,
                 cache_size, num_workers, min_replacement_rate, seed, window_frames, name):
        if not mono_downmix:
            raise ValueError("mono_downmix=False is not supported by the batch generators: the U-Net "
                             "takes one channel; set mono_downmix=True")
        if not reader.entries:
            raise ValueError(f"{name}: the list of songs/samples is empty; check the dataset partition")
        if num_workers < 0 or min_replacement_rate < 0 or not duration > 0:
            raise ValueError(f"{name}: need num_workers >= 0, min_replacement_rate >= 0 and duration > 0, got "
                             f"{num_workers}, {min_replacement_rate}, {duration}")
        self._reader, self._name = reader, name
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.cache_size = check_positive_int(cache_size, "cache_size")
        self.num_workers, self.min_replacement_rate = int(num_workers), float(min_replacement_rate)
        self._window_frames = window_frames
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._rng = np.random.default_rng(seeds[0])  # cache slots, windows and gains
        self._reader_seeds = seeds[1]  # spawns one child per worker (or the inline reader) per start
        self._cache_slots = np.zeros(self.cache_size, np.int64)  # cache place -> slot
        self._valid = np.zeros(self.cache_size, np.int64)
        self._views = None
        self._unreadable = _UnreadableFiles(reader)
        self._source = None
        self._filled = 0
        self._average_replacements = self.min_replacement_rate
        self._counters = {"batches": 0, "items_replaced": 0, "items_read": 0, "wait_seconds": 0.0,
                          "fill_seconds": 0.0}

    # -- life cycle --------------------------------------------------------------------

    def start(self):
        """Start the workers (if any) and block until the cache is full. Idempotent."""
        if self._source is not None:
            return self
        began = time.monotonic()
        try:
            self._source = self._make_source()
            self._filled = 0
            while self._filled < self.cache_size:
                self._source.wait_one(self._fill_next)
                self._source.check()
        except BaseException:
            self.stop()
            raise
        self._counters["fill_seconds"] += time.monotonic() - began
        LOGGER.info("%s batch generator: cache of %d sections filled by %d worker(s) in %.1f s", self._name,
                    self.cache_size, self.num_workers, time.monotonic() - began)
        return self

    def _make_source(self):
        if self.num_workers == 0:
            source = _InlineSource(self._reader, self._reader_seeds.spawn(1)[0], self._unreadable,
                                   self.cache_size + 1)
        else:
            # Beyond the cache's slots, enough that every worker can hand over an item while
            # the parent still holds a batch's worth of unconsumed ones.
            spare = max(2 * self.num_workers, 2 * int(math.ceil(self.min_replacement_rate)), 2)
            source = _WorkerPool(self._reader, self._reader_seeds.spawn(self.num_workers), self.cache_size + spare,
                                 self._unreadable, self._name)
        self._views = source.views
        return source

    def stop(self):
        """Stop and reap the worker processes (safe to call repeatedly)."""
        source, self._source = self._source, None
        if source is not None:
            source.close()
        self._views = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        return False

    # -- cache -------------------------------------------------------------------------

    def _store(self, place, slot, valid):
        """Put the item in ``slot`` at cache ``place``; returns the slot it replaced."""
        replaced = int(self._cache_slots[place])
        self._cache_slots[place] = slot
        self._valid[place] = valid
        self._counters["items_read"] += 1
        return replaced

    def _fill_next(self, slot, valid):
        if self._filled < self.cache_size:
            self._store(self._filled, slot, valid)
            self._filled += 1
            return None
        return self._replace_random(slot, valid)

    def _replace_random(self, slot, valid):
        return self._store(int(self._rng.integers(self.cache_size)), slot, valid)

    def _refresh_cache(self):
        """Take every waiting item, then block until the running average of replacements per
        batch reaches ``min_replacement_rate`` (or the whole cache was replaced)."""
        replaced = self._source.drain(self._replace_random)
        self._source.check()
        smoothing = REPLACEMENT_SMOOTHING
        began = time.monotonic()
        while (replaced < self.cache_size and
               (1 - smoothing) * replaced + smoothing * self._average_replacements < self.min_replacement_rate):
            self._source.wait_one(self._replace_random)
            replaced += 1
        self._counters["wait_seconds"] += time.monotonic() - began
        self._average_replacements = (1 - smoothing) * replaced + smoothing * self._average_replacements
        self._counters["items_replaced"] += replaced

    # -- batches -----------------------------------------------------------------------

    def get_batch(self):
        """Refresh the cache and draw one batch (starts the generator on first use)."""
        if self._source is None:
            self.start()
        self._refresh_cache()
        places = self._rng.integers(0, self.cache_size, self.batch_size)
        max_starts = np.maximum(self._valid[places] - self._window_frames, 0)
        starts = (self._rng.random(self.batch_size) * (max_starts + 1)).astype(np.int64)
        self._counters["batches"] += 1
        return self._assemble(self._cache_slots[places], starts)

    def stats(self) -> dict:
        """Counters for monitoring and benchmarks.

        Returns:
            dict with ``batches`` drawn, ``items_replaced`` (cache items replaced after the
            initial fill), ``replacement_rate`` (items replaced per batch), ``items_read``
            (including the fill), ``wait_seconds`` (time get_batch blocked for items),
            ``fill_seconds`` and ``unreadable_entries`` (songs or samples skipped because
            a file could not be read).
        """
        stats = dict(self._counters)
        stats["replacement_rate"] = stats["items_replaced"] / max(stats["batches"], 1)
        stats["unreadable_entries"] = len(self._unreadable.bad_entries)
        return stats

    def worker_pids(self) -> List[int]:
        """Process ids of the running workers (empty with ``num_workers=0`` or when stopped)."""
        return [] if self._source is None else self._source.pids()


def _gather_windows(slots, items, starts, width, height):
    """Windows ``slots[items[b], :, starts[b]:starts[b] + width]`` as [B, height, width, 1],
    frequency-padded as :func:`pad_freqs` does."""
    bins = slots.shape[1]
    before, _ = _padding_rows(bins, height)
    out = np.empty((len(items), height, width, 1), np.float32)
    out[:, :before] = 0.0
    out[:, before + bins:] = 0.0
    target = out[:, before:before + bins, :, 0]
    for b, (item, start) in enumerate(zip(items.tolist(), starts.tolist())):
        target[b] = slots[item, :, start:start + width]
    return out


class PairedBatchGenerator(_CachedBatchGenerator):
    """Batches of aligned (mixture with context, source_1, ..., source_K) magnitude windows.

    Example i's mixture window covers ``input_shape[1]`` frames whose centre
    ``output_shape[1]`` frames are exactly the frames of its source windows; the
    ``(T_in - T_out) // 2`` context frames each side are real audio where the song has it and
    zeros past its start or end.

    Args:
        songs: list of tuples of Samples ``(mixture, source_1, ..., source_K)``, same K for
            all; a source may be ``None`` (silent).
        input_shape: ``(F_in, T_in)`` of the U-Net input, e.g. ``(350, 158)``.
        output_shape: ``(F_out, T_out)`` of the U-Net output, e.g. ``(258, 66)``.
        batch_size: examples per batch.
        expected_sr, mono_downmix, num_fft, num_hop: signal representation (PAPER.md).
        duration: seconds per cached section (output span; the mixture has context on top).
        cache_size: sections held in memory.
        num_workers: reading processes; 0 reads in the calling process (deterministic).
        min_replacement_rate: cache items replaced per batch on average, at least.
        seed: experiment seed; workers and batch sampling get their own derived streams.
        magnitudes: optional ``AudioCache.MagnitudeStore`` with the files' precomputed
            magnitude spectrograms (same ``num_fft``, ``num_hop`` and ``expected_sr``):
            sections of the files it holds are read from it instead of being transformed,
            which is the same data at a fraction of the workers' CPU time.
    """

    def __init__(self, songs, input_shape, output_shape, batch_size, expected_sr=8192, mono_downmix=True,
                 num_fft=512, num_hop=256, duration=10.0, cache_size=64, num_workers=4,
                 min_replacement_rate=8, seed=0, magnitudes=None):
        (self.input_shape, self.output_shape) = (_check_shape(input_shape, "input_shape"),
                                                 _check_shape(output_shape, "output_shape"))
        context, remainder = divmod(self.input_shape[1] - self.output_shape[1], 2)
        if context < 0 or remainder:
            raise ValueError(f"input frames {self.input_shape[1]} must exceed output frames "
                             f"{self.output_shape[1]} by an even number")
        songs = [tuple(song) for song in songs]
        if not songs:
            raise ValueError("paired: the list of songs is empty; check the dataset partition (train_sup)")
        if any(len(song) != len(songs[0]) or len(song) < 2 or is_silent(song[0]) for song in songs):
            raise ValueError("songs must be tuples (mixture, source_1, ..., source_K) with the same K >= 1 "
                             "and a mixture Sample")
        geometry = SectionGeometry(int(expected_sr), int(num_fft), int(num_hop),
                                   max(self.output_shape[1], int(round(duration * expected_sr / num_hop))), context)
        for height, what in ((self.input_shape[0], "input_shape"), (self.output_shape[0], "output_shape")):
            if height < geometry.bins:
                raise ValueError(f"{what} height {height} is smaller than the {geometry.bins} frequency bins of "
                                 f"num_fft={num_fft}")
        super().__init__(_PairedReader(songs, geometry, magnitudes), batch_size, expected_sr, mono_downmix,
                         num_fft, num_hop, duration, cache_size, num_workers, min_replacement_rate, seed,
                         window_frames=self.output_shape[1], name="paired")

    def get_batch(self) -> List[np.ndarray]:
        """``[mixture [B, F_in, T_in, 1], source_1 [B, F_out, T_out, 1], ...]``, float32 linear
        magnitudes, sources in song order."""
        return super().get_batch()

    def _assemble(self, slots, starts):
        (f_in, t_in), (f_out, t_out) = self.input_shape, self.output_shape
        batch = [_gather_windows(self._views[0], slots, starts, t_in, f_in)]
        for k in range(self._reader.num_sources):
            batch.append(_gather_windows(self._views[1][:, k], slots, starts, t_out, f_out))
        return batch


class SingleSourceBatchGenerator(_CachedBatchGenerator):
    """Batches of unpaired magnitude windows of single files (mixtures or solo sources).

    Args:
        samples: list of Samples (``None`` = silence).
        shape: ``(F, T)`` of one example, context included: the U-Net input shape for
            unpaired mixtures, the output shape for real source excerpts.
        context_frames: frames of context on each side of the ``T - 2 * context_frames``
            centre (real audio where available, zeros past a file's ends); 0 for sources.
        random_gain: ``(low, high)``: every example is scaled by a gain drawn uniformly from
            it (``(0.2, 1.2)`` for real sources, PAPER.md); None for no gain.
        Other arguments as :class:`PairedBatchGenerator`.
    """

    def __init__(self, samples, shape, context_frames=0, random_gain=None, batch_size=64, expected_sr=8192,
                 mono_downmix=True, num_fft=512, num_hop=256, duration=10.0, cache_size=64, num_workers=4,
                 min_replacement_rate=8, seed=0, magnitudes=None):
        self.shape = _check_shape(shape, "shape")
        self.context_frames = int(context_frames)
        centre = self.shape[1] - 2 * self.context_frames
        if self.context_frames < 0 or centre < 1:
            raise ValueError(f"context_frames={context_frames} must be >= 0 and leave a centre in "
                             f"{self.shape[1]} frames")
        if random_gain is not None and not (len(random_gain) == 2 and 0 <= random_gain[0] <= random_gain[1]):
            raise ValueError(f"random_gain must be None or (low, high) with 0 <= low <= high, got {random_gain!r}")
        self.random_gain = None if random_gain is None else (float(random_gain[0]), float(random_gain[1]))
        geometry = SectionGeometry(int(expected_sr), int(num_fft), int(num_hop),
                                   max(centre, int(round(duration * expected_sr / num_hop))), self.context_frames)
        if self.shape[0] < geometry.bins:
            raise ValueError(f"shape height {self.shape[0]} is smaller than the {geometry.bins} frequency bins "
                             f"of num_fft={num_fft}")
        super().__init__(_SingleReader(samples, geometry, magnitudes), batch_size, expected_sr, mono_downmix,
                         num_fft, num_hop, duration, cache_size, num_workers, min_replacement_rate, seed,
                         window_frames=centre, name="single")

    def get_batch(self) -> np.ndarray:
        """float32 linear magnitudes [B, F, T, 1] (random gain applied if configured)."""
        return super().get_batch()

    def _assemble(self, slots, starts):
        batch = _gather_windows(self._views[0], slots, starts, self.shape[1], self.shape[0])
        if self.random_gain is not None:
            gains = self._rng.uniform(*self.random_gain, size=len(slots)).astype(np.float32)
            batch *= gains[:, None, None, None]
        return batch


# ----------------------------------------------------------------------------------------
# Whole songs: validation and test loss
# ----------------------------------------------------------------------------------------

def _song_magnitudes(song, expected_sr, num_fft, num_hop):
    """Magnitudes of a whole song: mixture [F, n] and sources [K, F, n] on the mixture's frames."""
    mixture, *sources = song
    audio = read_audio(mixture.path, expected_sr, mono_downmix=True)
    mix = np.abs(stft(audio, num_fft, num_hop))
    out = np.zeros((len(sources),) + mix.shape, np.float32)
    for k, source in enumerate(sources):
        if not is_silent(source):
            source_audio = _fit_length(read_audio(source.path, expected_sr, mono_downmix=True), len(audio))
            out[k] = np.abs(stft(source_audio, num_fft, num_hop))
    return mix, out


def validation_batches(songs, input_shape, output_shape, batch_size, expected_sr, mono_downmix, num_fft,
                       num_hop) -> Iterator[List[np.ndarray]]:
    """Paired batches covering every song by non-overlapping output windows, for the
    validation and test loss.

    Each song is read whole (one at a time). Output windows start at frames 0, T_out,
    2 T_out, ...; the last one is zero-padded past the song's end, and the mixture context
    is zeros before the start and after the end. Windows of consecutive songs share batches.

    Yields:
        ``[mixture [B, F_in, T_in, 1], source_1 [B, F_out, T_out, 1], ...]`` float32 linear
        magnitudes as :class:`PairedBatchGenerator`; ``B = batch_size`` except possibly for the
        last batch, which is smaller (weight per-batch means by ``B``).

    Raises:
        UnreadableAudioError: a song's file cannot be read (the loss must cover every song).
    """
    if not mono_downmix:
        raise ValueError("mono_downmix=False is not supported: the U-Net takes one channel")
    (f_in, t_in), (f_out, t_out) = _check_shape(input_shape, "input_shape"), _check_shape(output_shape, "output_shape")
    batch_size = check_positive_int(batch_size, "batch_size")
    context = (t_in - t_out) // 2
    pending = []  # (mixture window [F, T_in], sources [K, F, T_out])
    for song in songs:
        mix, sources = _song_magnitudes(song, expected_sr, num_fft, num_hop)
        frames = mix.shape[1]
        span = int(math.ceil(frames / t_out)) * t_out
        mix = np.pad(mix, [(0, 0), (context, span - frames + context)])
        sources = np.pad(sources, [(0, 0), (0, 0), (0, span - frames)])
        for start in range(0, frames, t_out):
            pending.append((mix[:, start:start + t_in], sources[:, :, start:start + t_out]))
            if len(pending) == batch_size:
                yield _stack_validation_batch(pending, f_in, f_out)
                pending = []
    if pending:
        yield _stack_validation_batch(pending, f_in, f_out)


def _stack_validation_batch(examples, f_in, f_out):
    mixtures = np.stack([mixture for mixture, _ in examples])[..., np.newaxis]
    sources = np.stack([source for _, source in examples])  # [B, K, F, T_out]
    batch = [pad_freqs(mixtures, f_in)]
    for k in range(sources.shape[1]):
        batch.append(pad_freqs(sources[:, k, :, :, np.newaxis], f_out))
    return [np.ascontiguousarray(array, dtype=np.float32) for array in batch]
