"""Songs of a prepared database as (mixture, accompaniment, voice), with derived audio computed once.

Derived audio is written once into ``cache_dir`` (never into the dataset folder) as float32
WAV at the inputs' sample rate, in a folder named after the song and a hash of the inputs'
resolved paths (so copies of one database never share a folder); its file name carries a hash
of the inputs' resolved paths, sizes and modification times, so a changed input gives a new
file and the stale one is removed. Files
of one song at different sample rates are resampled to the mixture's rate, different lengths
are cut to the shortest (both with a warning naming the files).

MUSDB18 (the ``.stem.mp4`` release) is decoded once, with stempeg (ffmpeg), into the same
cache: mixture = the AAC mixture stream 0 (what musdb's ``track.audio`` gives and what the
SiSEC 2018 systems were given as input), voice = the AAC vocals stream 4, accompaniment =
mixture - voice, all float32 WAV at the file's rate, so that mixture = accompaniment + voice
exactly, as the paired training needs. In MUSDB18 every stream is AAC-encoded on its own, so
the AAC mixture is not exactly the sum of the AAC stems: this accompaniment therefore differs
slightly from musdb's ``targets['accompaniment']`` (the sum of the decoded drums, bass and
other streams), as it also holds the coding errors of the mixture and vocals streams. The
streams are decoded to 32-bit float (musdb decodes to 16-bit integers, which differs by at
most one 16-bit step) and cut to the length the file declares (dropping the AAC encoder's
padding at the end).
"""

import glob
import hashlib
import json
import logging
import os
import re
from typing import Sequence

import ffmpeg
import numpy as np
import soundfile
import soxr
from tqdm import tqdm

import Input
from common import Utils
from databases import Sources
from databases.DatasetLayouts import MUSDB18_STREAMS, import_stempeg, stem_file_info
from databases.DatasetXML import DatasetConfigError, LabelledSong, PreparedDatabase
from Sample import FFMPEG_INSTALL_HINT, SOUNDFILE_EXTENSIONS, AudioDecoderError, Sample

LOGGER = logging.getLogger(__name__)

SOURCE_ORDER = ("mixture", "accompaniment", "voice")
# Bump when the structure stored in dataset.pkl or the derived audio changes meaning
# (2: derived audio keyed by the sources' resolved paths, one folder per set of sources).
DATASET_FORMAT_VERSION = 2
# Samples per AAC frame; a decoded stem may fall short of its declared length by a few frames.
AAC_FRAME_SAMPLES = 1024
MUSDB18_LENGTH_TOLERANCE_FRAMES = 4


def load_database_songs(database: PreparedDatabase, cache_dir: str, stems: Sequence[str] = ()) -> list:
    """Build the ``(mixture, accompaniment, voice)`` triples of every track, in XML order.

    Derived audio (see the module docstring) is written into ``cache_dir`` or reused from it.

    Args:
        stems: further sources wanted, of ``Sources.STEM_SOURCES`` (drums, bass, other); a
            song gives those its database and files have (databases/Sources.py), nothing else
            is read or derived.

    Returns:
        list of :class:`LabelledSong` (triple of Samples, the track's databaseSplit and the
        wanted stems it gives).

    Raises:
        FileNotFoundError: a file listed in the XML is missing.
        DatasetConfigError: a track lacks an instrument its database needs.
        ValueError: a file cannot be read or decoded (the message names it).
    """
    builders = {
        "DSD100": _multitrack_song,
        "MUSDB18HQ": _multitrack_song,
        "MUSDB18": _musdb18_song,
        "MedleyDB": _medleydb_song,
        "CCMixter": _ccmixter_song,
        "iKala": _ikala_song,
        "SongFolders": _song_folder_song,
    }
    stem_builders = {"DSD100": _multitrack_stems, "MUSDB18HQ": _multitrack_stems, "MUSDB18": _musdb18_stems}
    stem_builders["MedleyDB"] = _medleydb_stems
    wanted = [stem for stem in stems if stem in Sources.DATABASE_SOURCES[database.name]]
    songs = []
    for track in tqdm(
        database.description.tracks, desc=f"Preparing {database.name}", unit="song", leave=False, disable=None
    ):
        context = _SongContext(database, track, os.path.abspath(cache_dir))
        triple = builders[database.name](context)
        given = stem_builders[database.name](context, wanted, triple[0]) if wanted else None
        songs.append(LabelledSong(triple=triple, split=track.split, stems=given))
    return songs


class _SongContext:
    """Everything needed to resolve one track's files and to name its errors and cache folder."""

    def __init__(self, database, track, cache_dir):
        self.database, self.track, self.cache_dir = database, track, cache_dir
        self.where = f"{database.xml_path}: track '{track.song_name}'"

    def absolute(self, instrument):
        return self.database.path_of(self.track, instrument)

    def paths(self, instrument_name):
        return [self.absolute(item) for item in self.track.instruments if item.name == instrument_name]

    def single_path(self, instrument_name):
        paths = self.paths(instrument_name)
        if len(paths) != 1:
            raise DatasetConfigError(
                f"{self.where} needs exactly one instrument named {instrument_name} for a "
                f"{self.database.name} song, found {len(paths)}"
            )
        return paths[0]

    def sample(self, path):
        return Sample.from_path(path, database=self.database.name, song=self.track.song_name)

    def cache_folder(self, inputs):
        """``<cache_dir>/<database>/<song>-<hash of the inputs' resolved paths>``: the folder of the
        audio derived from exactly these source files, so that two copies of a database (or two
        XMLs listing other files for one song) never share a folder and never remove each
        other's files; a changed source keeps its folder, where its stale files are removed."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.track.song_name).strip("_")[:60] or "song"
        sources = [os.path.realpath(path) for _, path in inputs]
        identity = hashlib.sha1(json.dumps(sources).encode("utf-8")).hexdigest()[:12]
        return os.path.join(self.cache_dir, self.database.name, f"{slug}-{identity}")


def _multitrack_song(context):
    """DSD100 / MUSDB18-HQ: accompaniment = mixture - vocals (everything re-cut if they differ)."""
    mixture_path, voice_path = context.single_path("Mix"), context.single_path("Voice")
    mixture, voice = context.sample(mixture_path), context.sample(voice_path)
    inputs = [("mixture", mixture_path), ("voice", voice_path)]
    if _same_format([mixture, voice]):
        derived = _derived_samples(
            context, inputs, ("accompaniment",), lambda audio: {"accompaniment": audio["mixture"] - audio["voice"]}
        )
        return mixture, derived["accompaniment"], voice
    derived = _derived_samples(
        context,
        inputs,
        SOURCE_ORDER,
        lambda audio: {
            "mixture": audio["mixture"],
            "accompaniment": audio["mixture"] - audio["voice"],
            "voice": audio["voice"],
        },
    )
    return tuple(derived[role] for role in SOURCE_ORDER)


def _musdb18_song(context):
    """MUSDB18 stem file: mixture = AAC stream 0, voice = stream 4, accompaniment = mixture - voice.

    All three are decoded into the cache once (see the module docstring for why this
    accompaniment differs slightly from musdb's drums + bass + other).
    """
    path = context.single_path("Mix")
    derived = _derived_samples(
        context,
        [("stems", path)],
        SOURCE_ORDER,
        lambda audio: {
            "mixture": audio["mixture"],
            "accompaniment": audio["mixture"] - audio["voice"],
            "voice": audio["voice"],
        },
        reader=_read_musdb18_stems,
    )
    return tuple(derived[role] for role in SOURCE_ORDER)


def _medleydb_song(context):
    """MedleyDB: voice = sum of singer stems, accompaniment = sum of the rest, mixture = both."""
    stems = [item for item in context.track.instruments if item.name != "Mix"]
    if not stems:
        raise DatasetConfigError(f"{context.where} lists no stems (only the Mix): add its stems or remove the track")
    inputs = [(f"stem{index}", context.absolute(item)) for index, item in enumerate(stems)]
    vocal_labels = {label for (label, _), item in zip(inputs, stems) if item.name == "Voice"}
    mix_paths = context.paths("Mix")
    reference_rate = context.sample(mix_paths[0]).sample_rate if mix_paths else None

    def mix_stems(audio):
        template = np.zeros_like(next(iter(audio.values())))
        voice = sum((audio[label] for label in audio if label in vocal_labels), template)
        accompaniment = sum((audio[label] for label in audio if label not in vocal_labels), template)
        return {"mixture": voice + accompaniment, "accompaniment": accompaniment, "voice": voice}

    derived = _derived_samples(context, inputs, SOURCE_ORDER, mix_stems, reference_rate)
    return tuple(derived[role] for role in SOURCE_ORDER)


def _ccmixter_song(context):
    """CCMixter: the three files as they are (re-cut into the cache only if their formats differ)."""
    paths = [context.single_path(name) for name in ("Mix", "Instrumental", "Voice")]
    samples = [context.sample(path) for path in paths]
    if _same_format(samples):
        return tuple(samples)
    derived = _derived_samples(context, list(zip(SOURCE_ORDER, paths)), SOURCE_ORDER, lambda audio: audio)
    return tuple(derived[role] for role in SOURCE_ORDER)


def _song_folder_song(context):
    """SongFolders: two or three of Mix, Instrumental, Voice; a missing one is derived
    (accompaniment = mixture - voice, voice = mixture - accompaniment, mixture = accompaniment +
    voice). Files as they are when all three are there in one format, else re-cut into the cache."""
    present = {
        role: context.single_path(name)
        for role, name in zip(SOURCE_ORDER, ("Mix", "Instrumental", "Voice"))
        if context.paths(name)
    }
    if len(present) < 2:
        raise DatasetConfigError(
            f"{context.where} needs two or three of the instruments Mix, Instrumental and "
            f"Voice, found {', '.join(present) or 'none'}"
        )
    samples = {role: context.sample(path) for role, path in present.items()}

    def complete(audio):
        audio = dict(audio)
        if "mixture" not in audio:
            audio["mixture"] = audio["accompaniment"] + audio["voice"]
        elif "accompaniment" not in audio:
            audio["accompaniment"] = audio["mixture"] - audio["voice"]
        elif "voice" not in audio:
            audio["voice"] = audio["mixture"] - audio["accompaniment"]
        return audio

    if _same_format(list(samples.values())):
        missing = [role for role in SOURCE_ORDER if role not in present]
        derived = _derived_samples(context, list(present.items()), missing, complete) if missing else {}
        return tuple(samples[role] if role in samples else derived[role] for role in SOURCE_ORDER)
    derived = _derived_samples(context, list(present.items()), SOURCE_ORDER, complete)
    return tuple(derived[role] for role in SOURCE_ORDER)


def _ikala_song(context):
    """iKala: accompaniment = left channel, voice = right channel, mixture = their sum (mono)."""
    path = context.single_path("Mix")
    if context.sample(path).channels != 2:
        raise DatasetConfigError(
            f"{path} ({context.where}) is not stereo: iKala clips hold the accompaniment "
            "on the left and the voice on the right channel"
        )

    def split_channels(audio):
        accompaniment, voice = audio["stereo"][:, :1], audio["stereo"][:, 1:2]
        return {"mixture": accompaniment + voice, "accompaniment": accompaniment, "voice": voice}

    derived = _derived_samples(context, [("stereo", path)], SOURCE_ORDER, split_channels)
    return tuple(derived[role] for role in SOURCE_ORDER)


def _multitrack_stems(context, stems, mixture):
    """DSD100 / MUSDB18-HQ: each wanted stem's file (``Drums``, ``Bass``, ``Other``) as it is, or
    re-cut to the mixture's rate and length if its format differs; a song without the file
    does not give that stem."""
    given = {}
    for stem in stems:
        paths = context.paths(stem.capitalize())
        if len(paths) != 1:
            continue
        sample = context.sample(paths[0])
        if _same_format([mixture, sample]):
            given[stem] = sample
        else:
            inputs = [("mixture", mixture.path), (stem, paths[0])]
            given.update(_derived_samples(context, inputs, (stem,), lambda audio, stem=stem: {stem: audio[stem]}))
    return given


def _musdb18_stems(context, stems, mixture):
    """MUSDB18 stem file: each wanted stem's AAC stream (drums 1, bass 2, other 3), decoded once."""
    path = context.single_path("Mix")
    return _derived_samples(
        context, [("stems", path)], tuple(stems), lambda audio: audio, reader=_musdb18_reader(tuple(stems))
    )


def _medleydb_stems(context, stems, mixture):
    """MedleyDB: each wanted stem = the sum of the stems whose instrumentName maps to it
    (Sources.medleydb_stem: Voice, Drums, Bass; every other name is other), silence if none."""
    items = [item for item in context.track.instruments if item.name != "Mix"]
    inputs = [(f"stem{index}", context.absolute(item)) for index, item in enumerate(items)]
    stem_of = {label: Sources.medleydb_stem(item.name) for (label, _), item in zip(inputs, items)}
    mix_paths = context.paths("Mix")
    reference_rate = context.sample(mix_paths[0]).sample_rate if mix_paths else None

    def sum_stems(audio):
        template = np.zeros_like(next(iter(audio.values())))
        return {stem: sum((audio[label] for label in audio if stem_of[label] == stem), template) for stem in stems}

    return _derived_samples(context, inputs, tuple(stems), sum_stems, reference_rate)


def _same_format(samples):
    """True if all samples share sample rate, channel count and number of frames."""
    signatures = {
        (sample.sample_rate, sample.channels, round(sample.duration * sample.sample_rate)) for sample in samples
    }
    return len(signatures) == 1


def _derived_samples(context, inputs, roles, compute, reference_rate=None, reader=None):
    """Samples of derived audio files, computed from ``inputs`` once and cached.

    Args:
        context: the song's _SongContext (database, song name, cache folder).
        inputs: list of (label, absolute path) of the files the outputs depend on.
        roles: names of the outputs (e.g. "accompaniment"), used in the file names.
        compute: function dict label -> float32 [samples, channels] -> dict role -> array.
        reference_rate: sample rate the inputs are resampled to; None = the first input's.
        reader: function ``(inputs, reference_rate, where) -> (dict label -> float32 [samples,
            channels], sample rate in Hz)`` giving ``compute``'s argument, all signals of one
            rate and length; only called when an output is missing. None = :func:`_read_files`
            (each input is one audio file, read under its own label).

    Returns:
        dict role -> Sample of ``<cache_folder>/<role>-<key>.wav`` (see
        :meth:`_SongContext.cache_folder`) where key hashes the inputs' resolved paths, sizes
        and modification times.
    """
    key = _cache_key(context.database.name, roles, inputs, reference_rate)
    folder = context.cache_folder(inputs)
    outputs = {role: os.path.join(folder, f"{role}-{key}.wav") for role in roles}
    if not all(os.path.isfile(path) for path in outputs.values()):
        audio, sample_rate = (reader or _read_files)(inputs, reference_rate, context.where)
        results = compute(audio)
        for role, path in outputs.items():
            Utils.atomic_write_audio(path, results[role].astype(np.float32), sample_rate)
            _remove_stale(folder, role, path)
    return {role: context.sample(path) for role, path in outputs.items()}


def _cache_key(database, roles, inputs, reference_rate):
    identity = [DATASET_FORMAT_VERSION, database, list(roles), reference_rate]
    for label, path in inputs:
        status = os.stat(path)
        identity.append([label, os.path.realpath(path), status.st_size, status.st_mtime_ns])
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:16]


def _remove_stale(folder, role, keep):
    for path in glob.glob(os.path.join(glob.escape(folder), f"{role}-*.wav")):
        if path != keep:
            os.remove(path)


def _read_files(inputs, reference_rate, where):
    """The default reader of :func:`_derived_samples`: label -> the audio of its file, aligned
    by :func:`_read_aligned` (float32 [samples, channels]), and the common sample rate in Hz."""
    audio, sample_rate = _read_aligned([path for _, path in inputs], reference_rate, where)
    return dict(zip([label for label, _ in inputs], audio)), sample_rate


def _read_musdb18_stems(inputs, reference_rate, where):
    """Reader of :func:`_derived_samples` for one MUSDB18 stem file (``inputs`` = [(label, path)]).

    Returns:
        ({"mixture": stream 0, "voice": stream 4}, each float32 [samples, channels] at the
        mixture stream's rate (``reference_rate`` is not used), cut to the length the file
        declares and to each other's; the sample rate in Hz).

    Raises:
        ValueError: the file cannot be decoded, or decodes to much less audio than it declares.
        DatasetConfigError: the file lacks one of the 5 MUSDB18 streams.
    """
    return _musdb18_reader((("mixture", "mixture"), ("voice", "vocals")))(inputs, reference_rate, where)


def _musdb18_reader(streams):
    """A reader like :func:`_read_musdb18_stems` of the ``streams``: (label, MUSDB18 stream
    name) pairs, or stream names used as their own labels (e.g. ``("drums", "bass")``)."""
    pairs = [(item, item) if isinstance(item, str) else item for item in streams]

    def read(inputs, reference_rate, where):
        ((_, path),) = inputs
        info = stem_file_info(path)
        sample_rate = info.sample_rate(0)
        declared = int(round(info.duration(0) * sample_rate))
        audio = {
            label: _decode_stem_stream(path, info, MUSDB18_STREAMS.index(stream), sample_rate, declared, where)
            for label, stream in pairs
        }
        shortest = min(len(signal) for signal in audio.values())
        return {label: np.ascontiguousarray(signal[:shortest]) for label, signal in audio.items()}, sample_rate

    return read


def _decode_stem_stream(path, info, stream, sample_rate, declared, where):
    """Audio stream number ``stream`` of a stem file as float32 [samples, channels] at
    ``sample_rate`` Hz, cut to ``declared`` samples (its encoder padding removed)."""
    name = MUSDB18_STREAMS[stream]
    stempeg = import_stempeg()
    try:
        audio, _ = stempeg.read_stems(
            path,
            stem_id=info.audio_stream_idx()[stream],
            info=info,
            sample_rate=sample_rate,
            dtype=np.float32,
            ffmpeg_format="f32le",
            always_3d=True,
        )
    except FileNotFoundError as error:  # the ffmpeg program itself
        raise AudioDecoderError(
            f"ffmpeg is needed to decode the MUSDB18 stem file {path} but was not found: {FFMPEG_INSTALL_HINT}"
        ) from error
    except (Warning, RuntimeError, ValueError, ffmpeg.Error) as error:
        raise ValueError(
            f"Cannot decode the {name} stream (stream {stream}) of the MUSDB18 stem file {path} "
            f"({where}): {type(error).__name__}: {error}. Replace the file with the original "
            "or remove its track"
        ) from error
    audio = np.asarray(audio[0], dtype=np.float32)
    shortfall = declared - len(audio)
    if shortfall > MUSDB18_LENGTH_TOLERANCE_FRAMES * AAC_FRAME_SAMPLES:
        raise ValueError(
            f"The {name} stream of the MUSDB18 stem file {path} ({where}) decodes to "
            f"{len(audio) / sample_rate:.3f} s but the file declares {declared / sample_rate:.3f} s: "
            "it is truncated or damaged. Replace it with the original or remove its track"
        )
    Input.check_finite(audio, path, sample_rate)
    return audio[:declared]


def _read_aligned(paths, reference_rate, where):
    """Read files as float32 [samples, channels] at one rate, one channel count and one length.

    Files at another rate than ``reference_rate`` (default: the first file's) are resampled
    with a warning; mono files are duplicated to the others' channel count; different lengths
    are cut to the shortest with a warning naming the files.
    """
    audio, rates = zip(*(_read_audio(path) for path in paths))
    durations = [len(signal) / rate for signal, rate in zip(audio, rates)]
    target_rate = reference_rate or rates[0]
    if any(rate != target_rate for rate in rates):
        LOGGER.warning(
            "%s: resampling to %d Hz, the mixture's rate: %s",
            where,
            target_rate,
            ", ".join(f"{path} ({rate} Hz)" for path, rate in zip(paths, rates) if rate != target_rate),
        )
        audio = [
            soxr.resample(signal, rate, target_rate) if rate != target_rate else signal
            for signal, rate in zip(audio, rates)
        ]
    audio = _match_channels(list(audio), paths)
    shortest = min(len(signal) for signal in audio)
    if max(durations) - min(durations) > 1.0 / max(rates):
        LOGGER.warning(
            "%s: files have different lengths, using the common %.3f s: %s",
            where,
            shortest / target_rate,
            ", ".join(f"{path} ({duration:.3f} s)" for path, duration in zip(paths, durations)),
        )
    return [np.ascontiguousarray(signal[:shortest], dtype=np.float32) for signal in audio], target_rate


def _read_audio(path):
    """float32 [samples, channels] and the sample rate of an audio file (NaN or infinite
    samples raise Input.NonFiniteAudioError naming the file)."""
    if path.lower().endswith(SOUNDFILE_EXTENSIONS):
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        Input.check_finite(audio, path, rate)
        return audio, rate
    import librosa  # only for formats libsndfile cannot read; librosa falls back to audioread

    audio, rate = librosa.load(path, sr=None, mono=False)
    return np.atleast_2d(audio).T.astype(np.float32), rate


def _match_channels(audio, paths):
    channels = max(signal.shape[1] for signal in audio)
    matched = []
    for signal, path in zip(audio, paths):
        if signal.shape[1] == 1 and channels > 1:
            signal = np.repeat(signal, channels, axis=1)
        elif signal.shape[1] != channels:
            raise ValueError(
                f"{path} has {signal.shape[1]} channels but the other files of its song have "
                f"{channels}: convert it to mono or {channels} channels"
            )
        matched.append(signal)
    return matched
