"""Audio reading and spectrograms: what every other module builds on.

Signal representation (PAPER.md): audio is down-mixed to mono, resampled to ``expected_sr``
(8192 Hz) with soxr and clipped to [-1, 1]; a centred STFT with a Hann window of ``num_fft``
(512) samples and hop ``num_hop`` (256) gives ``num_fft // 2 + 1`` (257) frequency bins.
The batch generators (pipeline/BatchGenerators.py) return *linear* magnitudes (float32); the
networks normalise them (``log(1 + x)``) on their inference path (Models/Inference.py).
The frequency axis is zero-padded to the U-Net's height with :func:`pad_freqs` (equal rows
on both sides, an odd remainder at the end).

Every read checks that the samples are finite: a file with a NaN or infinite sample raises
:class:`NonFiniteAudioError`, naming the file and the time. Heavy modules (TensorFlow,
librosa) are never imported here, so that reader processes start cheaply.
"""

import contextlib
import math
import os
from typing import Optional, Tuple

import numpy as np
import soundfile
import soxr

# The signal layer's spectrograms (audio/Spectrogram.py), reached as Input.stft etc.
from audio.Spectrogram import (  # noqa: F401
    WorkArrays,
    frame_magnitudes,
    istft,
    pad_freqs,
    padding_rows,
    stft,
    unit_phasors,
    unpad_freqs,
)

# Formats libsndfile decodes with seeking; anything else is decoded by audioread (ffmpeg).
SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
# Extra input samples (at the file's rate) read on each side of a section before
# resampling, so the resampler's edge transient falls outside the kept samples.
RESAMPLE_MARGIN_SECONDS = 0.02


class UnreadableAudioError(RuntimeError):
    """An audio file cannot be opened or decoded; ``path`` names it."""

    def __init__(self, path: str, reason: str):
        """``path``: the file; ``reason``: why it cannot be read (both go into the message)."""
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


def check_finite(audio: np.ndarray, path: str, sample_rate: float, first_frame: int = 0, unit: str = "sample") -> None:
    """Raise :class:`NonFiniteAudioError` if ``audio`` holds a NaN or an infinite value.

    Args:
        audio: array [frames] or [frames, channels] (``unit="sample"``), or a magnitude
            spectrogram [frames, bins] (``unit="frame"``).
        path, unit: the file ``audio`` was read from, and what a frame is called (for the message).
        sample_rate: frames per second of ``audio`` (samples/s, or STFT frames/s).
        first_frame: index in the file of ``audio``'s first frame (for the time in the error).
    """
    finite = np.isfinite(audio)
    if finite.all():
        return
    if finite.ndim > 1:
        finite = finite.reshape(len(finite), -1).all(axis=1)
    index = first_frame + int(np.argmin(finite))
    value = np.asarray(audio).reshape(len(finite), -1)[index - first_frame]
    bad = value[~np.isfinite(value)][0]
    raise NonFiniteAudioError(
        path,
        f"{unit} {index} (at {index / sample_rate:.3f} s) is {bad}; the file "
        "holds non-finite values. Repair or remove it from the dataset",
    )


def check_positive_int(value: object, name: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else a ValueError naming ``name``."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def is_silent(entry: object) -> bool:
    """True for a source a song lacks: ``None`` or an object with a true ``silent`` attribute."""
    return entry is None or bool(getattr(entry, "silent", False))


# ----------------------------------------------------------------------------------------
# Reading audio
# ----------------------------------------------------------------------------------------


def read_audio(
    path: str,
    expected_sr: int,
    mono_downmix: bool = True,
    offset: float = 0.0,
    duration: Optional[float] = None,
    padding_duration: float = 0.0,
) -> np.ndarray:
    """Read a file, or a section of it, resampled to ``expected_sr``.

    The span read is ``[offset - padding_duration, offset + duration + padding_duration]``
    seconds; the parts of it before the file's start or past its end are zeros. WAV, FLAC,
    OGG and AIFF are read with seeking (only the span is decoded); other formats are decoded
    with audioread (ffmpeg).

    Args:
        path, expected_sr, mono_downmix: audio file; output sample rate in Hz; average the channels.
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
        audio = read_span(path, expected_sr, mono_downmix, start, None)
        padding = int(round(padding_duration * expected_sr))
        return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, padding)]) if padding > 0 else audio
    length = int(round((duration + 2 * padding_duration) * expected_sr))
    return read_span(path, expected_sr, mono_downmix, start, length)


def read_random_section(
    path: str,
    expected_sr: int,
    mono_downmix: bool,
    duration: float,
    padding_duration: float,
    rng: np.random.Generator,
    file_duration: Optional[float] = None,
) -> Tuple[np.ndarray, float]:
    """Read a random ``duration``-second section widened by ``padding_duration`` each side.

    The un-padded centre ``[offset, offset + duration]`` lies inside the file whenever the file
    is long enough (else it starts at 0 and its end is zero-padded); the context on each side
    is real audio where the file has it and zeros past its start or end.

    Args:
        path, expected_sr, mono_downmix: as :func:`read_audio`.
        duration, padding_duration: seconds of the centre section, and of context on each side.
        rng: ``numpy.random.Generator`` choosing the offset.
        file_duration: the file's length in seconds if known (``Sample.duration``); else read from the file.

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


def audio_duration(path: str) -> float:
    """Length of an audio file in seconds (header only where the format allows)."""
    with _open_audio(path) as audio_file:
        return audio_file.frames / audio_file.sample_rate


def check_file_finite(path: str, block_seconds: float = 60.0) -> None:
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


def read_span(
    path: str,
    expected_sr: int,
    mono_downmix: bool,
    start: int,
    length: Optional[int],
    scratch: Optional[WorkArrays] = None,
) -> np.ndarray:
    """Samples ``[start, start + length)`` at ``expected_sr`` (zeros outside the file).

    ``length`` None reads to the file's end. Returns float32 ``[samples]`` (mono) or
    ``[channels, samples]``, clipped to [-1, 1]. With a ``scratch`` (``pipeline.Sections.Scratch``:
    ``scratch.array(name, shape, dtype)`` gives a reused work array), a mono file at
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
            audio = fit_length(resampled[shift : shift + length], length)
            # Past the file's ends the resampler rings a little; the span is zeros there.
            file_end = int(round(audio_file.frames * expected_sr / rate)) - start
            audio[: max(-start, 0)] = 0.0
            audio[max(file_end, 0) :] = 0.0
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


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
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
            out[: max(begin - first, 0)] = 0.0
            out[max(end - first, 0) :] = 0.0
        if end > begin:
            target = out[begin - first : end - first]
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
            from Sample import ffmpeg_is_installed, undecodable_reason

            if ffmpeg_is_installed():  # then the file is at fault, not the set-up
                raise UnreadableAudioError(path, undecodable_reason(path)) from error
            raise UnreadableAudioError(
                path, f"no installed decoder can read it ({error!r}); install ffmpeg or convert it to WAV/FLAC"
            ) from error

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
        audio = fit_length(np.concatenate([leading, data]), count)
        if out is None:
            return audio
        out[...] = audio
        return out

    def close(self):
        pass
