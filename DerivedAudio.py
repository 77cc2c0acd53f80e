"""Songs of a prepared database as (mixture, accompaniment, voice), with derived audio computed once.

Derived audio is written once into ``cache_dir`` (never into the dataset folder) as float32
WAV at the inputs' sample rate; its file name carries a hash of the inputs' paths, sizes and
modification times, so a changed input gives a new file and the stale one is removed. Files
of one song at different sample rates are resampled to the mixture's rate, different lengths
are cut to the shortest (both with a warning naming the files).
"""

import glob
import hashlib
import json
import logging
import os
import re

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

import Input
import Utils
from DatasetXML import DatasetConfigError, LabelledSong, PreparedDatabase
from Sample import SOUNDFILE_EXTENSIONS, Sample

LOGGER = logging.getLogger(__name__)

SOURCE_ORDER = ("mixture", "accompaniment", "voice")
# Bump when the structure stored in dataset.pkl or the derived audio changes meaning.
DATASET_FORMAT_VERSION = 1


def load_database_songs(database: PreparedDatabase, cache_dir) -> list:
    """Build the ``(mixture, accompaniment, voice)`` triples of every track, in XML order.

    Derived audio (see the module docstring) is written into ``cache_dir`` or reused from it.

    Returns:
        list of :class:`LabelledSong` (triple of Samples and the track's databaseSplit).

    Raises:
        FileNotFoundError: a file listed in the XML is missing.
        DatasetConfigError: a track lacks an instrument its database needs.
    """
    builders = {"DSD100": _multitrack_song, "MUSDB18HQ": _multitrack_song, "MedleyDB": _medleydb_song,
                "CCMixter": _ccmixter_song, "iKala": _ikala_song}
    songs = []
    for track in tqdm(database.description.tracks, desc=f"Preparing {database.name}", unit="song",
                      leave=False, disable=None):
        context = _SongContext(database, track, os.path.abspath(cache_dir))
        songs.append(LabelledSong(triple=builders[database.name](context), split=track.split))
    return songs


class _SongContext:
    """Everything needed to resolve one track's files and to name its errors and cache folder."""

    def __init__(self, database, track, cache_dir):
        self.database, self.track, self.cache_dir = database, track, cache_dir
        self.where = f"{database.xml_path}: track '{track.song_name}'"

    def absolute(self, instrument):
        return os.path.join(self.database.folder, *instrument.relative_path.split("/"))

    def paths(self, instrument_name):
        return [self.absolute(item) for item in self.track.instruments if item.name == instrument_name]

    def single_path(self, instrument_name):
        paths = self.paths(instrument_name)
        if len(paths) != 1:
            raise DatasetConfigError(f"{self.where} needs exactly one instrument named {instrument_name} for a "
                                     f"{self.database.name} song, found {len(paths)}")
        return paths[0]

    def sample(self, path):
        return Sample.from_path(path, database=self.database.name, song=self.track.song_name)

    @property
    def cache_folder(self):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.track.song_name).strip("_")[:60] or "song"
        identity = hashlib.sha1(self.track.instruments[0].relative_path.encode("utf-8")).hexdigest()[:8]
        return os.path.join(self.cache_dir, self.database.name, f"{slug}-{identity}")


def _multitrack_song(context):
    """DSD100 / MUSDB18-HQ: accompaniment = mixture - vocals (everything re-cut if they differ)."""
    mixture_path, voice_path = context.single_path("Mix"), context.single_path("Voice")
    mixture, voice = context.sample(mixture_path), context.sample(voice_path)
    inputs = [("mixture", mixture_path), ("voice", voice_path)]
    if _same_format([mixture, voice]):
        derived = _derived_samples(context, inputs, ("accompaniment",),
                                   lambda audio: {"accompaniment": audio["mixture"] - audio["voice"]})
        return mixture, derived["accompaniment"], voice
    derived = _derived_samples(context, inputs, SOURCE_ORDER, lambda audio: {
        "mixture": audio["mixture"], "accompaniment": audio["mixture"] - audio["voice"], "voice": audio["voice"]})
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


def _ikala_song(context):
    """iKala: accompaniment = left channel, voice = right channel, mixture = their sum (mono)."""
    path = context.single_path("Mix")
    if context.sample(path).channels != 2:
        raise DatasetConfigError(f"{path} ({context.where}) is not stereo: iKala clips hold the accompaniment "
                                 "on the left and the voice on the right channel")

    def split_channels(audio):
        accompaniment, voice = audio["stereo"][:, :1], audio["stereo"][:, 1:2]
        return {"mixture": accompaniment + voice, "accompaniment": accompaniment, "voice": voice}

    derived = _derived_samples(context, [("stereo", path)], SOURCE_ORDER, split_channels)
    return tuple(derived[role] for role in SOURCE_ORDER)


def _same_format(samples):
    """True if all samples share sample rate, channel count and number of frames."""
    signatures = {(sample.sample_rate, sample.channels, round(sample.duration * sample.sample_rate))
                  for sample in samples}
    return len(signatures) == 1


def _derived_samples(context, inputs, roles, compute, reference_rate=None):
    """Samples of derived audio files, computed from ``inputs`` once and cached.

    Args:
        context: the song's _SongContext (database, song name, cache folder).
        inputs: list of (label, absolute path) of the files the outputs depend on.
        roles: names of the outputs (e.g. "accompaniment"), used in the file names.
        compute: function dict label -> float32 [samples, channels] -> dict role -> array.
        reference_rate: sample rate the inputs are resampled to; None = the first input's.

    Returns:
        dict role -> Sample of ``<cache_folder>/<role>-<key>.wav`` where key hashes the
        inputs' paths, sizes and modification times.
    """
    key = _cache_key(context.database.name, roles, inputs, reference_rate)
    folder = context.cache_folder
    outputs = {role: os.path.join(folder, f"{role}-{key}.wav") for role in roles}
    if not all(os.path.isfile(path) for path in outputs.values()):
        audio, sample_rate = _read_aligned([path for _, path in inputs], reference_rate, context.where)
        results = compute(dict(zip([label for label, _ in inputs], audio)))
        for role, path in outputs.items():
            Utils.atomic_write_audio(path, results[role].astype(np.float32), sample_rate)
            _remove_stale(folder, role, path)
    return {role: context.sample(path) for role, path in outputs.items()}


def _cache_key(database, roles, inputs, reference_rate):
    identity = [DATASET_FORMAT_VERSION, database, list(roles), reference_rate]
    for label, path in inputs:
        status = os.stat(path)
        identity.append([label, os.path.abspath(path), status.st_size, status.st_mtime_ns])
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()[:16]


def _remove_stale(folder, role, keep):
    for path in glob.glob(os.path.join(glob.escape(folder), f"{role}-*.wav")):
        if path != keep:
            os.remove(path)


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
        LOGGER.warning("%s: resampling to %d Hz, the mixture's rate: %s", where, target_rate,
                       ", ".join(f"{path} ({rate} Hz)" for path, rate in zip(paths, rates) if rate != target_rate))
        audio = [soxr.resample(signal, rate, target_rate) if rate != target_rate else signal
                 for signal, rate in zip(audio, rates)]
    audio = _match_channels(list(audio), paths)
    shortest = min(len(signal) for signal in audio)
    if max(durations) - min(durations) > 1.0 / max(rates):
        LOGGER.warning("%s: files have different lengths, using the common %.3f s: %s", where,
                       shortest / target_rate, ", ".join(f"{path} ({duration:.3f} s)"
                                                         for path, duration in zip(paths, durations)))
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
            raise ValueError(f"{path} has {signal.shape[1]} channels but the other files of its song have "
                             f"{channels}: convert it to mono or {channels} channels")
        matched.append(signal)
    return matched
