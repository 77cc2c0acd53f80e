"""Training's audio cache: every dataset file converted once to the model's rate and channels,
and optionally to its magnitude spectrogram.

Training reads random sections of every song thousands of times. Resampling 44.1 kHz stereo
files to ``expected_sr`` (8192 Hz) mono on every read costs about half of the input workers'
CPU time, so :func:`model_rate_dataset` converts each file once and returns the dataset with
every Sample pointing at its converted copy; the batch generators then read audio that needs
no resampling and no down-mixing.

The conversion reads each whole file with :func:`Input.read_audio`, the reader the workers
use, so the cached audio is what they computed before (apart from effects at the edges of
the sections they read): soxr high-quality resampling, channels averaged when down-mixing,
values clipped to [-1, 1].

Cache layout: ``<cache_dir>/model_rate/<expected_sr>Hz_<mono|stereo>/<name>-<source id>-<key>.wav``
(32-bit float WAV). ``name`` is readable (the source's folder and file name), ``source id``
hashes the source's absolute path and ``key`` hashes the path, size, modification time
(ns), ``expected_sr``, the mono flag and :data:`FORMAT_VERSION`. A copy is reused while its
key matches; a changed source gets a new copy and the stale copy of the same source is
removed. "stereo" means "channels kept as in the source".

Magnitude spectrograms
----------------------
Even at the model's rate, the STFT of every section is most of a reading worker's CPU time
(about 5 ms of the 5.3 ms of a paired item at the paper's shapes). :func:`magnitude_store`
computes each file's whole magnitude spectrogram once (``|Input.stft|`` of
:func:`Input.read_audio` in mono: the frame grid the workers' sections fall on) and returns a
:class:`MagnitudeStore` that reads any span of frames from disk in a fraction of a
millisecond. Layout: ``<cache_dir>/magnitudes/<expected_sr>Hz_<num_fft>fft_<num_hop>hop/
<name>-<source id>-<key>.npy``, float32 ``[frames, num_fft // 2 + 1]`` (time-major, so a
span of frames is one contiguous read), keyed like the audio copies plus the STFT settings.
Disk use is 4 * (num_fft / 2 + 1) / num_hop bytes per sample of audio at ``expected_sr``:
with the paper's settings about the size of a mono 32-bit model-rate copy (7.9 MB per
4-minute file).
"""

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import numbers
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Mapping, NamedTuple, Optional

import numpy as np
import soundfile
from tqdm import tqdm

import Input
from common import Utils
from Sample import Sample

LOGGER = logging.getLogger(__name__)

# Part of every cache key: bump it when the conversion changes, so old copies are redone.
FORMAT_VERSION = 1
MB = 1024.0**2


class _Conversion(NamedTuple):
    """One source file to convert (picklable: it is sent to a worker process).

    With ``num_fft`` > 0 the target is the file's magnitude spectrogram (``.npy``), else
    its audio (``.wav``).
    """

    source: str
    target: str
    expected_sr: int
    mono_downmix: bool
    num_fft: int = 0
    num_hop: int = 0


def model_rate_folder(cache_dir: str, expected_sr: int, mono_downmix: bool) -> str:
    """Absolute folder of the copies at ``expected_sr`` Hz, mono or with the sources' channels."""
    layout = "mono" if mono_downmix else "stereo"
    return os.path.join(os.path.abspath(cache_dir), "model_rate", f"{int(expected_sr)}Hz_{layout}")


def model_rate_dataset(
    dataset: dict, cache_dir: str, expected_sr: int, mono_downmix: bool, num_workers: int = 2
) -> dict:
    """The dataset with every Sample pointing at a copy of its audio at ``expected_sr``.

    Args:
        dataset: dict partition -> list, as ``Datasets.get_dataset`` returns it: ``train_sup``,
            ``valid`` and ``test`` are lists of ``(mixture, *sources)`` tuples of Samples,
            ``train_unsup`` a list of lists of Samples. Any nesting of dicts, lists and tuples
            is accepted and kept.
        cache_dir: the copies go into ``<cache_dir>/model_rate/<expected_sr>Hz_<mono|stereo>``.
        expected_sr: the model's sample rate in Hz (8192 in the paper).
        mono_downmix: average the channels to one (the paper); else keep the channels.
        num_workers: conversion processes; 0 converts in this process. No process is
            started when every copy is current.

    Returns:
        A new dict of the same structure. Each Sample keeps its ``database`` and ``song`` and
        gets the copy's ``path``, ``sample_rate`` (= ``expected_sr``), ``channels`` and
        ``duration``. Silent placeholders (``None`` or ``silent`` entries, see
        :func:`Input.is_silent`) are passed through unchanged. A file used in several places
        is converted once.

    Raises:
        Input.UnreadableAudioError: a source file is missing or cannot be decoded (named).
        ValueError: bad ``expected_sr`` / ``num_workers``, or an entry that is not a Sample.
    """
    expected_sr, num_workers = _check_settings(expected_sr, num_workers)
    folder = model_rate_folder(cache_dir, expected_sr, mono_downmix)
    conversions = {
        path: _plan_conversion(path, folder, expected_sr, bool(mono_downmix)) for path in _source_paths(dataset)
    }
    _convert_missing(
        list(conversions.values()),
        num_workers,
        "Model-rate audio",
        folder,
        f"Converting audio to {expected_sr} Hz {'mono' if mono_downmix else '(channels kept)'}",
    )
    metadata = {path: _audio_metadata(job.target) for path, job in conversions.items()}
    return _map_samples(
        dataset, lambda sample: dataclasses.replace(sample, **metadata[_absolute(sample.path)]), "dataset"
    )


def magnitude_folder(cache_dir: str, expected_sr: int, num_fft: int, num_hop: int) -> str:
    """Absolute folder of the magnitude spectrograms for these settings."""
    return os.path.join(
        os.path.abspath(cache_dir), "magnitudes", f"{int(expected_sr)}Hz_{int(num_fft)}fft_{int(num_hop)}hop"
    )


def magnitude_store(
    dataset: dict, cache_dir: str, expected_sr: int, num_fft: int, num_hop: int, num_workers: int = 2
) -> "MagnitudeStore":
    """Compute (once) the magnitude spectrogram of every file of ``dataset``.

    Args:
        dataset: any nesting of dicts, lists and tuples of Samples, as for
            :func:`model_rate_dataset` (typically its result, so that no resampling is needed:
            pass only the partitions the batch generators read, ``train_sup`` and
            ``train_unsup``).
        cache_dir: the spectrograms go into :func:`magnitude_folder`.
        expected_sr: sample rate in Hz the audio is read at (resampled if a file differs).
        num_fft, num_hop: STFT window and hop in samples (PAPER.md: 512 and 256).
        num_workers: computing processes; 0 computes in this process.

    Returns:
        A :class:`MagnitudeStore` of every non-silent Sample's path (the audio's path, as the
        batch generators know it). Audio is always down-mixed to mono, as the generators need.

    Raises:
        Input.UnreadableAudioError: a file is missing or cannot be decoded (named).
        ValueError: bad settings, or an entry that is not a Sample.
    """
    expected_sr, num_workers = _check_settings(expected_sr, num_workers)
    num_fft, num_hop = Input.check_positive_int(num_fft, "num_fft"), Input.check_positive_int(num_hop, "num_hop")
    folder = magnitude_folder(cache_dir, expected_sr, num_fft, num_hop)
    conversions = {
        path: _plan_conversion(path, folder, expected_sr, True, num_fft, num_hop) for path in _source_paths(dataset)
    }
    _convert_missing(
        list(conversions.values()),
        num_workers,
        "Magnitude spectrograms",
        folder,
        f"Computing magnitude spectrograms ({num_fft}-point STFT, hop {num_hop})",
    )
    return MagnitudeStore(
        {path: job.target for path, job in conversions.items()}, num_fft, frame_rate=expected_sr / num_hop
    )


def _convert_missing(conversions, num_workers, what, folder, description):
    """Run the conversions whose target does not exist yet, and log what was done."""
    pending = [job for job in conversions if not os.path.isfile(job.target)]
    if not pending:
        LOGGER.info("%s in %s: all %d file(s) are current", what, folder, len(conversions))
        return
    began = time.monotonic()
    written = _convert_all(pending, num_workers, description)
    LOGGER.info(
        "%s in %s: wrote %d file(s) (%.1f MB) in %.1f s, reused %d",
        what,
        folder,
        len(pending),
        written / MB,
        time.monotonic() - began,
        len(conversions) - len(pending),
    )


class MagnitudeStore:
    """Whole-file magnitude spectrograms on disk (written by :func:`magnitude_store`), read by spans.

    Picklable: the batch generators' worker processes get a copy and read from it. Each file
    is an ``.npy`` of float32 ``[frames, bins]``; a read opens it, reads the span's bytes into
    a buffer and transposes them into the caller's ``[bins, frames]`` array.

    Args:
        files: audio path -> ``.npy`` path.
        num_fft: STFT size the spectrograms were computed with (``bins = num_fft // 2 + 1``).
        frame_rate: STFT frames per second (``expected_sr / num_hop``), for the times that
            errors give.
    """

    def __init__(self, files: Mapping[str, str], num_fft: int, frame_rate: float):
        self._files = {_absolute(path): os.fspath(target) for path, target in files.items()}
        self.bins = int(num_fft) // 2 + 1
        self.frame_rate = float(frame_rate)
        self._layouts = {}  # npy path -> (data offset in bytes, frames): filled per process

    def __contains__(self, path) -> bool:
        return _absolute(path) in self._files

    def __len__(self) -> int:
        return len(self._files)

    def __getstate__(self):
        return {"_files": self._files, "bins": self.bins, "frame_rate": self.frame_rate, "_layouts": {}}

    def read_frames(self, path: str, first: int, out: np.ndarray, buffer: Optional[np.ndarray] = None) -> np.ndarray:
        """Fill ``out`` (float32 [bins, count]) with frames ``first .. first + count - 1`` of
        ``path``'s spectrogram; frames before 0 or past the file's last frame are zeros.

        Args:
            path: audio path (a key of the store).
            first: first frame (may be negative).
            out: float32 array [bins, count] to write.
            buffer: optional float32 array with at least ``count * bins`` elements for the
                raw (time-major) bytes; a new one is allocated if None.

        Returns:
            ``out``.

        Raises:
            KeyError: ``path`` is not in the store.
            Input.UnreadableAudioError: the spectrogram file is missing or damaged (naming it);
                :class:`Input.NonFiniteAudioError` if the span holds NaN or infinite values.
        """
        target = self._files[_absolute(path)]
        bins, count = out.shape
        if bins != self.bins:
            raise ValueError(f"out has {bins} rows, the spectrograms of this store have {self.bins} bins")
        offset, frames = self._layout(target)
        begin, end = max(first, 0), min(first + count, frames)
        out[:, : max(begin - first, 0)] = 0.0
        out[:, max(end - first, 0) :] = 0.0
        if end <= begin:
            return out
        if buffer is None:
            buffer = np.empty((end - begin) * bins, np.float32)
        raw = buffer[: (end - begin) * bins].reshape(end - begin, bins)
        try:
            fd = os.open(target, os.O_RDONLY)
            try:
                read = os.preadv(fd, [memoryview(raw).cast("B")], offset + begin * bins * 4)
            finally:
                os.close(fd)
        except OSError as error:
            raise Input.UnreadableAudioError(
                target, f"cannot read the cached spectrogram ({error}); delete it and run again to recompute it"
            ) from error
        if read != raw.nbytes:
            raise Input.UnreadableAudioError(
                target, "the cached spectrogram is truncated; delete it and run again to recompute it"
            )
        Input.check_finite(raw, target, self.frame_rate, first_frame=begin, unit="frame")
        out[:, begin - first : end - first] = raw.T
        return out

    def frames(self, path: str) -> int:
        """Number of frames of ``path``'s spectrogram."""
        return self._layout(self._files[_absolute(path)])[1]

    def _layout(self, target):
        layout = self._layouts.get(target)
        if layout is None:
            layout = self._layouts[target] = _npy_layout(target, self.bins)
        return layout


def _npy_layout(target, bins):
    """(data offset in bytes, frames) of a float32 [frames, bins] C-order ``.npy`` file."""
    try:
        with open(target, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
    except (OSError, ValueError) as error:
        raise Input.UnreadableAudioError(
            target, f"cannot read the cached spectrogram ({error}); delete it and run again to recompute it"
        ) from error
    if len(shape) != 2 or shape[1] != bins or fortran_order or dtype != np.float32:
        raise Input.UnreadableAudioError(
            target,
            f"the cached spectrogram holds {dtype} {shape}, expected float32 "
            f"[frames, {bins}]; delete it and run again to recompute it",
        )
    return offset, int(shape[0])


def _check_settings(expected_sr, num_workers):
    if (
        isinstance(expected_sr, bool)
        or not isinstance(expected_sr, numbers.Real)
        or expected_sr <= 0
        or int(expected_sr) != expected_sr
    ):
        raise ValueError(f"expected_sr must be a positive whole number of Hz, got {expected_sr!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0 (0 converts in this process), got {num_workers!r}")
    return int(expected_sr), int(num_workers)


def _absolute(path):
    return os.path.abspath(os.fspath(path))


def _source_paths(dataset):
    """Absolute paths of the dataset's non-silent Samples, each once, in order of appearance."""
    paths = {}

    def collect(sample):
        paths.setdefault(_absolute(sample.path), None)
        return sample

    _map_samples(dataset, collect, "dataset")
    return list(paths)


def _map_samples(node, convert, where):
    """``node`` with every Sample replaced by ``convert(sample)``: dicts, lists and tuples are
    rebuilt with the same keys and order, silent placeholders kept as they are."""
    if Input.is_silent(node):
        return node
    if isinstance(node, Sample):
        return convert(node)
    if isinstance(node, dict):
        return {key: _map_samples(value, convert, f"{where}[{key!r}]") for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        mapped = [_map_samples(value, convert, f"{where}[{index}]") for index, value in enumerate(node)]
        return mapped if isinstance(node, list) else tuple(mapped)
    raise ValueError(
        f"{where} is a {type(node).__name__}, expected a Sample, None (silence), or a list, "
        "tuple or dict of them: build the dataset with Datasets.get_dataset or Sample.from_path"
    )


def _plan_conversion(source, folder, expected_sr, mono_downmix, num_fft=0, num_hop=0):
    """The conversion of ``source`` and its target path, named after the source's current state."""
    try:
        status = os.stat(source)
    except OSError as error:
        raise Input.UnreadableAudioError(
            source,
            f"the file does not exist or cannot be accessed ({error}); "
            "check the dataset folders or rebuild the dataset",
        ) from error
    identity = [FORMAT_VERSION, source, status.st_size, status.st_mtime_ns, expected_sr, mono_downmix]
    if num_fft:
        identity += [num_fft, num_hop]
    key = hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:16]
    extension = ".npy" if num_fft else ".wav"
    target = os.path.join(folder, f"{_source_prefix(source)}-{key}{extension}")
    return _Conversion(source, target, expected_sr, mono_downmix, num_fft, num_hop)


def _source_prefix(source):
    """``<folder>_<file name>-<hash of the path>``: the part of a copy's name shared by all
    versions of one source (many sources are called mixture.wav, hence the folder and hash)."""
    parent = os.path.basename(os.path.dirname(source))
    stem = os.path.splitext(os.path.basename(source))[0]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parent[:40]}_{stem[:40]}").strip("_.") or "audio"
    return f"{readable}-{hashlib.sha1(source.encode('utf-8')).hexdigest()[:10]}"


def _convert_all(conversions, num_workers, description):
    """Run the conversions (in worker processes unless ``num_workers`` is 0); returns bytes written."""
    with tqdm(total=len(conversions), desc=description, unit="file", leave=False, disable=None) as progress:
        if num_workers == 0:
            written = 0
            for conversion in conversions:
                written += _convert_file(conversion)
                progress.update()
            return written
        return _convert_in_pool(conversions, min(num_workers, len(conversions)), progress)


def _convert_in_pool(conversions, num_workers, progress):
    # The pool's processes start during submit(): hide the main script (it may import
    # TensorFlow) from them for that moment, as Input's reading workers do.
    pool = ProcessPoolExecutor(max_workers=num_workers, mp_context=Utils.worker_context())
    written = 0
    try:
        with Utils.main_script_hidden():
            futures = [pool.submit(_convert_file, conversion) for conversion in conversions]
        for future in as_completed(futures):
            written += future.result()
            progress.update()
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"A worker converting audio into {os.path.dirname(conversions[0].target)} died "
            f"({error}); it may have run out of memory: try num_workers=1"
        ) from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return written


def _convert_file(conversion: _Conversion) -> int:
    """Write ``conversion.target`` from ``conversion.source`` and remove stale copies of it.

    The whole source is read with :func:`Input.read_audio` (float32 in [-1, 1] at
    ``expected_sr``, averaged to mono if ``mono_downmix``) and written atomically, either as
    32-bit float WAV ([samples] or [samples, channels]) or, with ``num_fft``, as the ``.npy``
    of its magnitude spectrogram ``|Input.stft|`` transposed to float32 [frames, bins].
    Memory: the whole song, at the source's and at the model's rate, is held at once.

    Returns:
        Bytes written.

    Raises:
        Input.UnreadableAudioError: the source cannot be read.
    """
    audio = Input.read_audio(conversion.source, conversion.expected_sr, conversion.mono_downmix)
    if conversion.num_fft:
        magnitudes = np.abs(Input.stft(audio, conversion.num_fft, conversion.num_hop)).T
        with Utils.atomic_write(conversion.target, "wb") as handle:
            np.save(handle, np.ascontiguousarray(magnitudes, dtype=np.float32))
    else:
        Utils.atomic_write_audio(conversion.target, audio if audio.ndim == 1 else audio.T, conversion.expected_sr)
    _remove_stale_copies(conversion.target)
    return os.path.getsize(conversion.target)


def _remove_stale_copies(target):
    """Delete the other copies of ``target``'s source (names differing only in the key)."""
    folder, name = os.path.split(target)
    stem, extension = os.path.splitext(name)
    prefix = stem.rsplit("-", 1)[0]
    for path in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "-*" + extension)):
        if path != target and os.path.basename(path).rsplit("-", 1)[0] == prefix:
            with contextlib.suppress(FileNotFoundError):  # another run may have removed it already
                os.remove(path)
            LOGGER.debug("Removed stale cached copy %s", path)


def _audio_metadata(path):
    """The Sample fields a copy replaces: path, sample rate, channels, duration (from its header)."""
    info = soundfile.info(path)
    return {
        "path": path,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "duration": info.frames / info.samplerate,
    }
