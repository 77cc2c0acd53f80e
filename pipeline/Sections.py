"""What one cache item holds: the frame layout of a section, and the readers that fill it.

A *section* is ``duration`` seconds of a song on the whole song's STFT frame grid (plus, for
the mixture, the U-Net's time context on each side). :class:`PairedReader` reads aligned
mixture and source sections of a random song, :class:`SingleReader` sections of single files
(the unpaired lists); both read from a precomputed magnitude store when they have one, and
otherwise read audio and transform it. Files that cannot be decoded are skipped (and named
once); files with non-finite samples stop the reader.
"""

import dataclasses
import logging
import math
from typing import Callable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import numpy.typing as npt

from Input import NonFiniteAudioError, UnreadableAudioError, frame_magnitudes, is_silent, read_span
from pipeline.AudioCache import MagnitudeStore
from Sample import Sample

LOGGER = logging.getLogger(__name__)


class Scratch:
    """Work arrays reused from one item to the next, one buffer per name (not pickled).

    Reading an item touches a few MB of temporary arrays; freshly allocated, their pages fault
    in on every item (~450 page faults, ~35 % of an item's CPU time at the paper's shapes).
    """

    def __init__(self):
        self._buffers = {}

    def array(self, name: str, shape: Tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
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
    def bins(self) -> int:
        """Frequency bins of one STFT frame: ``num_fft // 2 + 1``."""
        return self.num_fft // 2 + 1

    def song_frames(self, seconds: float) -> int:
        """Frames of the whole song's centred STFT (``seconds`` of audio at ``expected_sr`` Hz)."""
        return 1 + int(round(seconds * self.expected_sr)) // self.num_hop

    def read_magnitudes(
        self,
        path: str,
        first_frame: int,
        frames: int,
        context: int,
        song_frames: int,
        out: Optional[np.ndarray] = None,
        scratch: Optional[Scratch] = None,
    ) -> np.ndarray:
        """float32 [bins, frames + 2 * context] magnitudes, frame 0 centred at
        ``(first_frame - context) * num_hop``.

        Frames outside the song's frame grid ``[0, song_frames)`` are zeros, exactly as the
        zero padding of a whole song's spectrogram at evaluation time. ``out``: optional
        float32 array of that shape to fill (and return) instead of a new one; ``scratch``:
        optional :class:`Scratch` for the temporary arrays.
        """
        total = frames + 2 * context
        start = (first_frame - context) * self.num_hop - self.num_fft // 2
        length = (total - 1) * self.num_hop + self.num_fft
        audio = read_span(path, self.expected_sr, True, start, length, scratch)
        magnitudes = frame_magnitudes(audio, self.num_fft, self.num_hop, out=out, scratch=scratch)
        magnitudes[:, : max(context - first_frame, 0)] = 0.0
        magnitudes[:, max(song_frames - first_frame + context, 0) :] = 0.0
        return magnitudes

    def random_first_frame(self, song_frames: int, rng: np.random.Generator) -> Tuple[int, int]:
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
            raise ValueError(
                f"The magnitude store has {magnitudes.bins} frequency bins, num_fft={geometry.num_fft} "
                f"gives {geometry.bins}: build it with the generator's num_fft"
            )
        self._scratch = Scratch()

    def _read_magnitudes(self, path, first_frame, frames, context, song_frames, out):
        """Section magnitudes into ``out`` [bins, frames + 2 * context], as
        :meth:`SectionGeometry.read_magnitudes`."""
        if self._magnitudes is not None and path in self._magnitudes:
            raw = self._scratch.array("stored", ((frames + 2 * context) * self.geometry.bins,), np.float32)
            return self._magnitudes.read_frames(path, first_frame - context, out, raw)
        return self.geometry.read_magnitudes(path, first_frame, frames, context, song_frames, out, self._scratch)


class PairedReader(_SectionReader):
    """Reads aligned (mixture with context, sources) sections of random songs."""

    def __init__(
        self,
        songs: Sequence[Sequence[Optional[Sample]]],
        geometry: SectionGeometry,
        magnitudes: Optional[MagnitudeStore] = None,
    ):
        """``songs``: tuples ``(mixture, source_1, ..., source_K)`` of the same K >= 1 (None = a silent
        source); ``geometry`` and ``magnitudes`` as in :class:`_SectionReader`."""
        super().__init__(songs, geometry, magnitudes)
        self.num_sources = len(self.entries[0]) - 1
        g = geometry
        self.item_shapes = [
            (g.bins, g.centre_frames + 2 * g.context_frames),
            (self.num_sources, g.bins, g.centre_frames),
        ]

    def read(
        self, index: int, rng: np.random.Generator, out: Optional[Sequence[np.ndarray]] = None
    ) -> Tuple[List[np.ndarray], int]:
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


class SingleReader(_SectionReader):
    """Reads sections (with optional context) of random single files."""

    def __init__(
        self,
        samples: Sequence[Optional[Sample]],
        geometry: SectionGeometry,
        magnitudes: Optional[MagnitudeStore] = None,
    ):
        """``samples``: the single files (None = silence); ``geometry`` and ``magnitudes`` as in
        :class:`_SectionReader`."""
        super().__init__(samples, geometry, magnitudes)
        g = geometry
        self.item_shapes = [(g.bins, g.centre_frames + 2 * g.context_frames)]

    def read(
        self, index: int, rng: np.random.Generator, out: Optional[Sequence[np.ndarray]] = None
    ) -> Tuple[List[np.ndarray], int]:
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


SectionReader = Union[PairedReader, SingleReader]


class UnreadableFiles:
    """Entries that failed to read, warned about once per path."""

    def __init__(self, reader: SectionReader):
        """``reader``: the reader whose entries (indices into ``reader.entries``) are tracked."""
        self._reader = reader
        self.bad_entries: Set[int] = set()
        self._warned: Set[str] = set()

    def report(self, index: int, path: str, reason: str) -> None:
        """Mark entry ``index`` bad because ``path`` failed with ``reason``; warn once per path.

        Raises:
            RuntimeError: every entry of the reader is now bad (:meth:`all_bad_message`).
        """
        self.bad_entries.add(index)
        if path not in self._warned:
            self._warned.add(path)
            LOGGER.warning("Skipping unreadable audio file %s: %s", path, reason)
        if len(self.bad_entries) == len(self._reader.entries):
            raise RuntimeError(self.all_bad_message())

    def all_bad_message(self) -> str:
        """The error message for a reader none of whose entries could be read."""
        listed = ", ".join(sorted(self._warned)[:5])
        return (
            f"None of the {len(self._reader.entries)} dataset entries could be read (e.g. {listed}); "
            "check that the dataset files exist and are valid audio"
        )


def read_good_item(
    reader: SectionReader,
    bad_entries: Set[int],
    rng: np.random.Generator,
    on_unreadable: Callable[[int, str, str], None],
    out: Optional[Sequence[np.ndarray]] = None,
) -> Optional[Tuple[List[np.ndarray], int]]:
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
