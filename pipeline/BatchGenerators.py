"""The cached batch generators that feed training, and the whole-song batches of the losses.

Data pipeline: reader processes (ReaderPool.py) read random sections of ``duration`` seconds
(plus the mixture's time context) of random songs (Sections.py), compute their magnitudes and
write them into shared-memory slots; the main process keeps a cache of ``cache_size`` of these
slots and draws every batch from random windows of random cache items, replacing on average
at least ``min_replacement_rate`` items per batch (a replacement swaps slot numbers: items are
never copied before the batch is assembled).

Reading costs, per paired item of 10 s plus context at the paper's settings (CPU ms, from
bench/input_pipeline.py): about 28 from 44.1 kHz stereo files; about 4 from copies already at
``expected_sr`` and mono (AudioCache.model_rate_dataset), where nothing is resampled or
down-mixed; about 0.4 when the files' whole magnitude spectrograms are precomputed
(AudioCache.magnitude_store, the generators' ``magnitudes`` argument) and sections are copied
from them instead of being transformed.
"""

import logging
import math
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from Input import check_positive_int, fit_length, is_silent, pad_freqs, padding_rows, read_audio, stft
from pipeline.AudioCache import MagnitudeStore
from pipeline.ReaderPool import InlineSource, WorkerPool
from pipeline.Sections import PairedReader, SectionGeometry, SingleReader, UnreadableFiles
from Sample import Sample

LOGGER = logging.getLogger(__name__)

# Smoothing of the running average of cache replacements per batch (as the reference).
REPLACEMENT_SMOOTHING = 0.99


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

    def __init__(
        self,
        reader,
        batch_size,
        mono_downmix,
        duration,
        cache_size,
        num_workers,
        min_replacement_rate,
        seed,
        window_frames,
        name,
    ):
        if not mono_downmix:
            raise ValueError(
                "mono_downmix=False is not supported by the batch generators: the U-Net "
                "takes one channel; set mono_downmix=True"
            )
        if not reader.entries:
            raise ValueError(f"{name}: the list of songs/samples is empty; check the dataset partition")
        if num_workers < 0 or min_replacement_rate < 0 or not duration > 0:
            raise ValueError(
                f"{name}: need num_workers >= 0, min_replacement_rate >= 0 and duration > 0, got "
                f"{num_workers}, {min_replacement_rate}, {duration}"
            )
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
        self._unreadable = UnreadableFiles(reader)
        self._source = None
        self._filled = 0
        self._average_replacements = self.min_replacement_rate
        self._counters = {"batches": 0, "items_replaced": 0, "items_read": 0, "wait_seconds": 0.0, "fill_seconds": 0.0}

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
        LOGGER.info(
            "%s batch generator: cache of %d sections filled by %d worker(s) in %.1f s",
            self._name,
            self.cache_size,
            self.num_workers,
            time.monotonic() - began,
        )
        return self

    def _make_source(self):
        if self.num_workers == 0:
            source = InlineSource(self._reader, self._reader_seeds.spawn(1)[0], self._unreadable, self.cache_size + 1)
        else:
            # Beyond the cache's slots, enough that every worker can hand over an item while
            # the parent still holds a batch's worth of unconsumed ones.
            spare = max(2 * self.num_workers, 2 * int(math.ceil(self.min_replacement_rate)), 2)
            source = WorkerPool(
                self._reader,
                self._reader_seeds.spawn(self.num_workers),
                self.cache_size + spare,
                self._unreadable,
                self._name,
            )
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
        while (
            replaced < self.cache_size
            and (1 - smoothing) * replaced + smoothing * self._average_replacements < self.min_replacement_rate
        ):
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
    before, _ = padding_rows(bins, height)
    out = np.empty((len(items), height, width, 1), np.float32)
    out[:, :before] = 0.0
    out[:, before + bins :] = 0.0
    target = out[:, before : before + bins, :, 0]
    for b, (item, start) in enumerate(zip(items.tolist(), starts.tolist())):
        target[b] = slots[item, :, start : start + width]
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

    def __init__(
        self,
        songs: Sequence[Sequence[Optional[Sample]]],
        input_shape: Tuple[int, int],
        output_shape: Tuple[int, int],
        batch_size: int,
        expected_sr: int = 8192,
        mono_downmix: bool = True,
        num_fft: int = 512,
        num_hop: int = 256,
        duration: float = 10.0,
        cache_size: int = 64,
        num_workers: int = 4,
        min_replacement_rate: float = 8,
        seed: int = 0,
        magnitudes: Optional[MagnitudeStore] = None,
    ):
        """Check the settings (arguments as in the class docstring); reading begins at :meth:`start`
        or the first batch."""
        (self.input_shape, self.output_shape) = (
            _check_shape(input_shape, "input_shape"),
            _check_shape(output_shape, "output_shape"),
        )
        context, remainder = divmod(self.input_shape[1] - self.output_shape[1], 2)
        if context < 0 or remainder:
            raise ValueError(
                f"input frames {self.input_shape[1]} must exceed output frames {self.output_shape[1]} by an even number"
            )
        songs = [tuple(song) for song in songs]
        if not songs:
            raise ValueError("paired: the list of songs is empty; check the dataset partition (train_sup)")
        if any(len(song) != len(songs[0]) or len(song) < 2 or is_silent(song[0]) for song in songs):
            raise ValueError(
                "songs must be tuples (mixture, source_1, ..., source_K) with the same K >= 1 and a mixture Sample"
            )
        geometry = SectionGeometry(
            int(expected_sr),
            int(num_fft),
            int(num_hop),
            max(self.output_shape[1], int(round(duration * expected_sr / num_hop))),
            context,
        )
        for height, what in ((self.input_shape[0], "input_shape"), (self.output_shape[0], "output_shape")):
            if height < geometry.bins:
                raise ValueError(
                    f"{what} height {height} is smaller than the {geometry.bins} frequency bins of num_fft={num_fft}"
                )
        super().__init__(
            PairedReader(songs, geometry, magnitudes),
            batch_size,
            mono_downmix,
            duration,
            cache_size,
            num_workers,
            min_replacement_rate,
            seed,
            window_frames=self.output_shape[1],
            name="paired",
        )

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

    def __init__(
        self,
        samples: Sequence[Optional[Sample]],
        shape: Tuple[int, int],
        context_frames: int = 0,
        random_gain: Optional[Tuple[float, float]] = None,
        batch_size: int = 64,
        expected_sr: int = 8192,
        mono_downmix: bool = True,
        num_fft: int = 512,
        num_hop: int = 256,
        duration: float = 10.0,
        cache_size: int = 64,
        num_workers: int = 4,
        min_replacement_rate: float = 8,
        seed: int = 0,
        magnitudes: Optional[MagnitudeStore] = None,
    ):
        """Check the settings (arguments as in the class docstring); reading begins at :meth:`start`
        or the first batch."""
        self.shape = _check_shape(shape, "shape")
        self.context_frames = int(context_frames)
        centre = self.shape[1] - 2 * self.context_frames
        if self.context_frames < 0 or centre < 1:
            raise ValueError(
                f"context_frames={context_frames} must be >= 0 and leave a centre in {self.shape[1]} frames"
            )
        if random_gain is not None and not (len(random_gain) == 2 and 0 <= random_gain[0] <= random_gain[1]):
            raise ValueError(f"random_gain must be None or (low, high) with 0 <= low <= high, got {random_gain!r}")
        self.random_gain = None if random_gain is None else (float(random_gain[0]), float(random_gain[1]))
        geometry = SectionGeometry(
            int(expected_sr),
            int(num_fft),
            int(num_hop),
            max(centre, int(round(duration * expected_sr / num_hop))),
            self.context_frames,
        )
        if self.shape[0] < geometry.bins:
            raise ValueError(
                f"shape height {self.shape[0]} is smaller than the {geometry.bins} frequency bins of num_fft={num_fft}"
            )
        super().__init__(
            SingleReader(samples, geometry, magnitudes),
            batch_size,
            mono_downmix,
            duration,
            cache_size,
            num_workers,
            min_replacement_rate,
            seed,
            window_frames=centre,
            name="single",
        )

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
            source_audio = fit_length(read_audio(source.path, expected_sr, mono_downmix=True), len(audio))
            out[k] = np.abs(stft(source_audio, num_fft, num_hop))
    return mix, out


def validation_batches(
    songs: Sequence[Sequence[Optional[Sample]]],
    input_shape: Tuple[int, int],
    output_shape: Tuple[int, int],
    batch_size: int,
    expected_sr: int,
    mono_downmix: bool,
    num_fft: int,
    num_hop: int,
) -> Iterator[Tuple[List[np.ndarray], np.ndarray]]:
    """Paired batches covering every song by non-overlapping output windows, for the
    validation and test loss.

    Each song is read whole (one at a time). Output windows start at frames 0, T_out,
    2 T_out, ...; the last one is zero-padded past the song's end, and the mixture context
    is zeros before the start and after the end. Windows of consecutive songs share batches.
    As in the reference, a loss counts only the frames inside the songs: each batch comes
    with the number of real frames of each window.

    Yields:
        ``(batch, valid_frames)``: ``batch`` is ``[mixture [B, F_in, T_in, 1], source_1
        [B, F_out, T_out, 1], ...]`` float32 linear magnitudes as :class:`PairedBatchGenerator`;
        ``B = batch_size`` except possibly for the last batch, which is smaller.
        ``valid_frames`` is int32 [B]: the leading output frames of each window that lie inside
        its song (``T_out`` but for a song's last window).

    Raises:
        UnreadableAudioError: a song's file cannot be read (the loss must cover every song).
    """
    if not mono_downmix:
        raise ValueError("mono_downmix=False is not supported: the U-Net takes one channel")
    (f_in, t_in), (f_out, t_out) = _check_shape(input_shape, "input_shape"), _check_shape(output_shape, "output_shape")
    batch_size = check_positive_int(batch_size, "batch_size")
    context = (t_in - t_out) // 2
    pending = []  # (mixture window [F, T_in], sources [K, F, T_out], real frames)
    for song in songs:
        mix, sources = _song_magnitudes(song, expected_sr, num_fft, num_hop)
        frames = mix.shape[1]
        span = int(math.ceil(frames / t_out)) * t_out
        mix = np.pad(mix, [(0, 0), (context, span - frames + context)])
        sources = np.pad(sources, [(0, 0), (0, 0), (0, span - frames)])
        for start in range(0, frames, t_out):
            pending.append(
                (mix[:, start : start + t_in], sources[:, :, start : start + t_out], min(t_out, frames - start))
            )
            if len(pending) == batch_size:
                yield _stack_validation_batch(pending, f_in, f_out)
                pending = []
    if pending:
        yield _stack_validation_batch(pending, f_in, f_out)


def _stack_validation_batch(examples, f_in, f_out):
    mixtures = np.stack([mixture for mixture, _, _ in examples])[..., np.newaxis]
    sources = np.stack([source for _, source, _ in examples])  # [B, K, F, T_out]
    batch = [pad_freqs(mixtures, f_in)]
    for k in range(sources.shape[1]):
        batch.append(pad_freqs(sources[:, k, :, :, np.newaxis], f_out))
    valid_frames = np.array([frames for _, _, frames in examples], np.int32)
    return [np.ascontiguousarray(array, dtype=np.float32) for array in batch], valid_frames
