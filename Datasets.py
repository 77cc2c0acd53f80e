"""Datasets: XML track lists, discovery of the public folder layouts, derived audio, partition.

The dataset dictionary
----------------------
:func:`get_dataset` returns a dict with exactly these four keys (the reference's docs named
``train_valid``/``train_test``; those keys do not exist):

- ``"train_sup"``: list of paired songs ``(mixture, accompaniment, voice)`` (``Sample`` triples);
- ``"train_unsup"``: three independent lists ``[mixtures, accompaniments, voices]`` of
  ``Sample`` used unpaired;
- ``"valid"``: list of ``(mixture, accompaniment, voice)`` triples;
- ``"test"``: list of ``(mixture, accompaniment, voice)`` triples.

A custom dataset is a function returning that dictionary, named as
``custom_dataset="package.module:function"``; it is called with ``custom_dataset_kwargs``
(none by default) and its result is checked by :func:`validate_dataset`.

XML files
---------
One XML per database (``database/databaseName``, ``database/databaseFolderPath``,
``database/trackList/track`` with ``title``, ``artist``, ``performer``, optional
``databaseSplit`` (``Training``/``Test``) and ``instrumentList/instrument`` entries with
``relativeFilepath``, ``audioFormat``, ``sampleRate``, ``length`` (seconds), ``numChannels``,
``instrumentName``, ``hasEffects``, ``multipleVoices``). ``relativeFilepath`` is relative to
the database folder: ``databaseFolderPath`` (itself relative to the XML's folder if not
absolute) unless ``dataset_roots[name]`` overrides it. The audio files are authoritative for
sample rate, channels and length; the XML's values are informative. An XML with an empty
track list is filled by discovery from the folder's public layout and written back.

``instrumentName`` per database (derived audio is never listed, it is computed at load time):

- DSD100 / MUSDB18HQ: ``Mix`` (mixture.wav), ``Voice`` (vocals.wav), ``Bass``, ``Drums``,
  ``Other``; accompaniment = Mix - Voice.
- MedleyDB: ``Mix`` (the _MIX.wav, used for its sample rate only) and one entry per stem:
  ``Voice`` for the singer labels in :data:`MEDLEYDB_VOCAL_LABELS`, otherwise ``Bass``,
  ``Drums``, ``Guitar``, ``Piano`` or ``Other``. Voice = sum of the ``Voice`` stems (silence
  if none), accompaniment = sum of all other stems, mixture = voice + accompaniment.
- CCMixter: ``Mix`` (mix.wav), ``Instrumental`` (source-01.wav), ``Voice`` (source-02.wav).
- iKala: ``Mix`` (the stereo Wavfile/<id>.wav); accompaniment = left channel, voice = right
  channel, mixture = left + right (all three mono).

Derived audio is written once into ``cache_dir`` (never into the dataset folder) as float32
WAV at the inputs' sample rate; its file name carries a hash of the inputs' paths, sizes and
modification times, so a changed input gives a new file and the stale one is removed. Files
of one song at different sample rates are resampled to the mixture's rate, different lengths
are cut to the shortest (both with a warning naming the files).

Command line: ``python Datasets.py NAME ROOT --xml FILE`` discovers the songs in ROOT (NAME one
of DSD100, MedleyDB, CCMixter, iKala, MUSDB18HQ), writes FILE and prints a one-line summary.
"""

import argparse
import dataclasses
import glob
import hashlib
import importlib
import json
import logging
import os
import pickle
import re
import sys
from typing import NamedTuple, Optional

import numpy as np
import soundfile
import soxr
import yaml
from lxml import etree
from tqdm import tqdm

import Input
import Utils
from DemoDatabase import generate_demo_database  # noqa: F401 (re-exported for Training.py)
from Sample import SOUNDFILE_EXTENSIONS, Sample

LOGGER = logging.getLogger(__name__)

DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala", "MUSDB18HQ")
SUPERVISED_DATABASES = ("DSD100", "MUSDB18HQ")
INSTRUMENT_NAMES = ("Mix", "Voice", "Instrumental", "Bass", "Drums", "Guitar", "Piano", "Other")
SPLITS = ("Training", "Test")
PARTITION_KEYS = ("train_sup", "train_unsup", "valid", "test")
PAIRED_PARTITIONS = ("train_sup", "valid", "test")
SOURCE_ORDER = ("mixture", "accompaniment", "voice")
PLACEHOLDER_PREFIX = "/path/to/"
# Bump when the structure stored in dataset.pkl or the derived audio changes meaning.
DATASET_FORMAT_VERSION = 1

MEDLEYDB_VOCAL_LABELS = frozenset({
    "male singer", "female singer", "vocalists", "male rapper", "female rapper", "choir",
    "male speaker", "female speaker"})
MEDLEYDB_MULTIPLE_VOICE_LABELS = frozenset({"vocalists", "choir"})
MEDLEYDB_INSTRUMENT_NAMES = {
    "electric bass": "Bass", "double bass": "Bass",
    "drum set": "Drums", "drum machine": "Drums", "kick drum": "Drums", "snare drum": "Drums",
    "bass drum": "Drums", "toms": "Drums", "auxiliary percussion": "Drums",
    "clean electric guitar": "Guitar", "distorted electric guitar": "Guitar",
    "acoustic guitar": "Guitar", "piano": "Piano", "electric piano": "Piano"}
# (file stem, instrumentName) of the sources of a DSD100 / MUSDB18-HQ song, mixture excluded.
MULTITRACK_SOURCES = (("vocals", "Voice"), ("bass", "Bass"), ("drums", "Drums"), ("other", "Other"))


class DatasetConfigError(ValueError):
    """The data is not configured or described correctly; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# In-memory form of an XML file


@dataclasses.dataclass(frozen=True)
class Instrument:
    """One ``instrument`` entry: an audio file of a track (path relative to the database folder)."""

    relative_path: str
    name: str
    audio_format: str = ""
    sample_rate: int = 0
    length: float = 0.0
    channels: int = 0
    has_effects: bool = True
    multiple_voices: bool = False


@dataclasses.dataclass(frozen=True)
class Track:
    """One ``track``: a song with its instrument files; ``split`` is "Training", "Test" or None."""

    title: str
    artist: str
    performer: str
    split: Optional[str]
    instruments: tuple

    @property
    def song_name(self) -> str:
        """Human-readable name "Artist - Title" (just the title if there is no artist)."""
        return f"{self.artist} - {self.title}" if self.artist else self.title

    @property
    def duration(self) -> float:
        """Length in seconds as listed in the XML: the Mix's, else the longest instrument's."""
        mixes = [instrument.length for instrument in self.instruments if instrument.name == "Mix"]
        return max(mixes or [instrument.length for instrument in self.instruments] or [0.0])


@dataclasses.dataclass(frozen=True)
class DatabaseDescription:
    """Contents of one database XML: name, databaseFolderPath as written, tracks in order."""

    name: str
    folder: str
    tracks: tuple


class LabelledSong(NamedTuple):
    """A paired song ``(mixture, accompaniment, voice)`` and its databaseSplit (or None)."""

    triple: tuple
    split: Optional[str]


@dataclasses.dataclass(frozen=True)
class PreparedDatabase:
    """A database ready to load: its XML path, resolved folder and (possibly discovered) tracks."""

    name: str
    xml_path: str
    folder: str
    description: DatabaseDescription


# ----------------------------------------------------------------------------------------------
# XML reading and writing


def read_database_xml(xml_path) -> DatabaseDescription:
    """Parse a database XML file.

    Raises:
        FileNotFoundError: the XML file does not exist.
        DatasetConfigError: malformed XML (with its line number), a wrong root element, an
            unknown instrumentName, a bad databaseSplit or a missing required tag.
    """
    if not os.path.isfile(xml_path):
        raise FileNotFoundError(f"Database XML {xml_path} does not exist: check the xml_paths setting")
    try:
        tree = etree.parse(xml_path, etree.XMLParser(remove_comments=True))
    except etree.XMLSyntaxError as error:
        raise DatasetConfigError(
            f"{xml_path} is not well-formed XML (line {error.lineno}: {error.msg}). Fix the file at "
            "that line, or restore it (`git checkout -- <file>`) and let discovery fill it") from error
    root = tree.getroot()
    if root.tag != "database":
        raise DatasetConfigError(f"{xml_path}: the root element is <{root.tag}>, expected <database>")
    tracks = tuple(_parse_track(element, xml_path, index)
                   for index, element in enumerate(root.iterfind("trackList/track"), start=1))
    return DatabaseDescription(name=(root.findtext("databaseName") or "").strip(),
                               folder=(root.findtext("databaseFolderPath") or "").strip(),
                               tracks=tracks)


def _parse_track(element, xml_path, index):
    title = (element.findtext("title") or "").strip()
    artist = (element.findtext("artist") or "").strip()
    where = f"{xml_path}: track {index} ('{f'{artist} - {title}' if artist else title}')"
    split = (element.findtext("databaseSplit") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise DatasetConfigError(f"{where} has databaseSplit '{split}'; use one of {', '.join(SPLITS)} "
                                 "or leave the tag out")
    instruments = tuple(_parse_instrument(node, where) for node in element.iterfind("instrumentList/instrument"))
    if not instruments:
        raise DatasetConfigError(f"{where} lists no instrumentList/instrument entries: add them or remove the track")
    return Track(title=title, artist=artist, performer=(element.findtext("performer") or "").strip(),
                 split=split, instruments=instruments)


def _parse_instrument(node, where):
    paths = [(path.text or "").strip() for path in node.findall("relativeFilepath")]
    if len(paths) != 1 or not paths[0]:
        raise DatasetConfigError(f"{where}: every instrument needs exactly one non-empty relativeFilepath "
                                 f"(found {len(paths)})")
    name = (node.findtext("instrumentName") or "").strip()
    if name not in INSTRUMENT_NAMES:
        raise DatasetConfigError(f"{where}: instrument {paths[0]} has unknown instrumentName '{name}'; "
                                 f"valid names are {', '.join(INSTRUMENT_NAMES)}. Fix the name or remove the entry")
    return Instrument(relative_path=paths[0], name=name,
                      audio_format=(node.findtext("audioFormat") or "").strip(),
                      sample_rate=_parse_number(node, "sampleRate", int, where),
                      length=_parse_number(node, "length", float, where),
                      channels=_parse_number(node, "numChannels", int, where),
                      has_effects=_parse_bool(node, "hasEffects", True),
                      multiple_voices=_parse_bool(node, "multipleVoices", False))


def _parse_number(node, tag, number_type, where):
    text = (node.findtext(tag) or "").strip()
    if not text:
        return number_type(0)
    try:
        return number_type(float(text)) if number_type is int else number_type(text)
    except ValueError as error:
        raise DatasetConfigError(f"{where}: <{tag}> '{text}' is not a number") from error


def _parse_bool(node, tag, default):
    text = (node.findtext(tag) or "").strip().lower()
    return default if not text else text in ("true", "1", "yes")


def write_database_xml(xml_path, description: DatabaseDescription):
    """Write ``description`` to ``xml_path`` atomically (pretty-printed UTF-8 XML)."""
    root = etree.Element("database")
    _add_text(root, "databaseName", description.name)
    _add_text(root, "databaseFolderPath", description.folder)
    track_list = etree.SubElement(root, "trackList")
    for track in description.tracks:
        element = etree.SubElement(track_list, "track")
        _add_text(element, "title", track.title)
        _add_text(element, "artist", track.artist)
        _add_text(element, "performer", track.performer)
        if track.split:
            _add_text(element, "databaseSplit", track.split)
        instrument_list = etree.SubElement(element, "instrumentList")
        for instrument in track.instruments:
            _add_instrument(instrument_list, instrument)
    content = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    with Utils.atomic_write(xml_path, "wb") as handle:
        handle.write(content)


def write_empty_xml(xml_path, name, folder=None):
    """Write an XML for database ``name`` without tracks (discovery fills it on first use).

    ``folder`` becomes databaseFolderPath; None writes the placeholder ``/path/to/<name>``.
    """
    write_database_xml(xml_path, DatabaseDescription(name=name, folder=folder or PLACEHOLDER_PREFIX + name,
                                                     tracks=()))


def _add_instrument(parent, instrument):
    node = etree.SubElement(parent, "instrument")
    _add_text(node, "relativeFilepath", instrument.relative_path)
    _add_text(node, "audioFormat", instrument.audio_format)
    _add_text(node, "sampleRate", str(instrument.sample_rate))
    _add_text(node, "length", f"{instrument.length:.6f}")
    _add_text(node, "numChannels", str(instrument.channels))
    _add_text(node, "instrumentName", instrument.name)
    _add_text(node, "hasEffects", "true" if instrument.has_effects else "false")
    _add_text(node, "multipleVoices", "true" if instrument.multiple_voices else "false")


def _add_text(parent, tag, text):
    etree.SubElement(parent, tag).text = text


def is_placeholder_folder(folder) -> bool:
    """True for an unset databaseFolderPath: empty or starting with ``/path/to/``."""
    return not folder or folder.startswith(PLACEHOLDER_PREFIX)


# ----------------------------------------------------------------------------------------------
# Discovery of the public folder layouts


def discover_database(name, root) -> DatabaseDescription:
    """List the songs of database ``name`` found in folder ``root`` in a fixed (sorted) order.

    Reads sample rate, channels and length from every file's header.

    Raises:
        DatasetConfigError: unknown name, or ``root`` holds no songs in the expected layout.
        FileNotFoundError: a song folder lacks one of its files.
    """
    discoverers = {"DSD100": _discover_dsd100, "MUSDB18HQ": _discover_musdb18hq,
                   "MedleyDB": _discover_medleydb, "CCMixter": _discover_ccmixter, "iKala": _discover_ikala}
    if name not in discoverers:
        raise DatasetConfigError(f"Unknown database '{name}'; known databases: {', '.join(DATABASE_NAMES)}")
    root = os.path.abspath(root)
    tracks = tuple(discoverers[name](root))
    if not tracks:
        raise DatasetConfigError(f"Found no {name} songs in {root}: is it the right folder? "
                                 f"Expected layout: {_LAYOUT_HINTS[name]}")
    LOGGER.info("Discovered %d %s songs in %s", len(tracks), name, root)
    return DatabaseDescription(name=name, folder=root, tracks=tracks)


_LAYOUT_HINTS = {
    "DSD100": "Mixtures/{Dev,Test}/<NNN - Artist - Title>/mixture.wav and "
              "Sources/{Dev,Test}/<same>/{bass,drums,other,vocals}.wav",
    "MUSDB18HQ": "{train,test}/<Artist - Title>/{mixture,vocals,bass,drums,other}.wav",
    "MedleyDB": "Audio/<Name>/<Name>_MIX.wav, Audio/<Name>/<Name>_STEMS/<Name>_STEM_NN.wav and "
                "Audio/<Name>/<Name>_METADATA.yaml",
    "CCMixter": "<Artist_-_Title>/{mix,source-01,source-02}.wav",
    "iKala": "Wavfile/<id>.wav (stereo: accompaniment left, voice right)",
}


def _sorted_entries(folder, want_dirs):
    """Sorted names of the non-hidden sub-folders (or files) of ``folder``; [] if it is missing."""
    if not os.path.isdir(folder):
        return []
    return sorted(entry for entry in os.listdir(folder) if not entry.startswith(".")
                  and os.path.isdir(os.path.join(folder, entry)) == want_dirs)


def _describe_file(root, relative_path, instrument_name, multiple_voices=False):
    """An Instrument entry for the file ``root/relative_path`` with metadata from its header."""
    path = os.path.join(root, *relative_path.split("/"))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected file {path} is missing: restore it, or remove the whole "
                                "song folder if the song is incomplete")
    sample = Sample.from_path(path)
    return Instrument(relative_path=relative_path, name=instrument_name,
                      audio_format=os.path.splitext(path)[1].lstrip(".").lower(),
                      sample_rate=sample.sample_rate, length=sample.duration, channels=sample.channels,
                      has_effects=True, multiple_voices=multiple_voices)


def _discover_dsd100(root):
    layout = [(f"Mixtures/{folder}", f"Sources/{folder}", split)
              for folder, split in (("Dev", "Training"), ("Test", "Test"))]
    return _discover_multitrack(root, layout, artist_title_from=_dsd100_artist_title)


def _discover_musdb18hq(root):
    layout = [(folder, folder, split) for folder, split in (("train", "Training"), ("test", "Test"))]
    return _discover_multitrack(root, layout, artist_title_from=_split_artist_title)


def _discover_multitrack(root, layout, artist_title_from):
    """Songs of a DSD100-like layout: [(mixtures folder, sources folder, split)] under ``root``."""
    tracks = []
    for mixture_folder, source_folder, split in layout:
        songs = _sorted_entries(os.path.join(root, *mixture_folder.split("/")), want_dirs=True)
        for song in tqdm(songs, desc=f"Reading {mixture_folder}", unit="song", leave=False, disable=None):
            instruments = [_describe_file(root, f"{mixture_folder}/{song}/mixture.wav", "Mix", True)]
            instruments += [_describe_file(root, f"{source_folder}/{song}/{stem}.wav", name, name == "Voice")
                             for stem, name in MULTITRACK_SOURCES]
            artist, title = artist_title_from(song)
            tracks.append(Track(title=title, artist=artist, performer=artist, split=split,
                                instruments=tuple(instruments)))
    return tracks


def _dsd100_artist_title(folder_name):
    parts = folder_name.split(" - ", 2)
    return (parts[1], parts[2]) if len(parts) == 3 else ("", folder_name)


def _split_artist_title(folder_name, separator=" - "):
    artist, found, title = folder_name.partition(separator)
    return (artist.strip(), title.strip()) if found else ("", folder_name)


def _discover_medleydb(root):
    tracks = []
    for name in tqdm(_sorted_entries(os.path.join(root, "Audio"), want_dirs=True),
                     desc="Reading MedleyDB", unit="song", leave=False, disable=None):
        metadata = _read_medleydb_metadata(root, name)
        instruments = [_describe_file(root, f"Audio/{name}/{name}_MIX.wav", "Mix", True)]
        for stem_id, stem in sorted(metadata["stems"].items()):
            instruments.append(_medleydb_stem(root, name, stem_id, stem))
        artist, title = _split_artist_title(name, "_")
        tracks.append(Track(title=str(metadata.get("title") or title), artist=str(metadata.get("artist") or artist),
                            performer=str(metadata.get("artist") or artist), split=None,
                            instruments=tuple(instruments)))
    return tracks


def _read_medleydb_metadata(root, name):
    """The parsed <Name>_METADATA.yaml (beside the audio, or in MedleyDB's Metadata/ folder)."""
    candidates = [os.path.join(root, "Audio", name, f"{name}_METADATA.yaml"),
                  os.path.join(root, "Metadata", f"{name}_METADATA.yaml")]
    path = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
    if path is None:
        raise FileNotFoundError(f"MedleyDB song {name} has no metadata file: expected {candidates[0]}")
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise DatasetConfigError(f"{path} is not valid YAML ({error}): restore the original file") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("stems"), dict) or not metadata["stems"]:
        raise DatasetConfigError(f"{path} has no 'stems' mapping (S01: {{filename: ..., instrument: ...}}): "
                                 "restore the original file")
    return metadata


def _medleydb_stem(root, name, stem_id, stem):
    if not isinstance(stem, dict) or not stem.get("filename"):
        raise DatasetConfigError(f"MedleyDB song {name}: stem {stem_id} in its METADATA.yaml has no 'filename'")
    labels = stem.get("instrument") or []
    labels = {str(label).strip().lower() for label in (labels if isinstance(labels, list) else [labels])}
    if labels & MEDLEYDB_VOCAL_LABELS:
        instrument_name = "Voice"
    else:
        instrument_name = next((MEDLEYDB_INSTRUMENT_NAMES[label] for label in sorted(labels)
                                if label in MEDLEYDB_INSTRUMENT_NAMES), "Other")
    return _describe_file(root, f"Audio/{name}/{name}_STEMS/{stem['filename']}", instrument_name,
                          multiple_voices=bool(labels & MEDLEYDB_MULTIPLE_VOICE_LABELS))


def _discover_ccmixter(root):
    tracks = []
    for name in tqdm(_sorted_entries(root, want_dirs=True), desc="Reading CCMixter", unit="song",
                     leave=False, disable=None):
        instruments = (_describe_file(root, f"{name}/mix.wav", "Mix", True),
                       _describe_file(root, f"{name}/source-01.wav", "Instrumental", True),
                       _describe_file(root, f"{name}/source-02.wav", "Voice"))
        artist, title = _split_artist_title(name, "_-_")
        artist, title = artist.replace("_", " "), title.replace("_", " ")
        tracks.append(Track(title=title, artist=artist, performer=artist, split=None, instruments=instruments))
    return tracks


def _discover_ikala(root):
    tracks = []
    files = [name for name in _sorted_entries(os.path.join(root, "Wavfile"), want_dirs=False)
             if name.lower().endswith(".wav")]
    for name in tqdm(files, desc="Reading iKala", unit="song", leave=False, disable=None):
        instrument = _describe_file(root, f"Wavfile/{name}", "Mix", True)
        if instrument.channels != 2:
            raise DatasetConfigError(f"iKala file {os.path.join(root, 'Wavfile', name)} has {instrument.channels} "
                                     "channel(s); iKala clips are stereo (accompaniment left, voice right)")
        tracks.append(Track(title=os.path.splitext(name)[0], artist="", performer="", split=None,
                            instruments=(instrument,)))
    return tracks


# ----------------------------------------------------------------------------------------------
# Configuration: XML + root -> prepared database


def prepare_database(name, xml_path, root, cache_dir, optional=False) -> Optional[PreparedDatabase]:
    """Resolve the folder of database ``name`` and its track list, discovering it if needed.

    Args:
        name: one of :data:`DATABASE_NAMES`.
        xml_path: the database's XML file; None means ``<cache_dir>/<name>.xml``. A missing
            file is created by discovery when a root is known.
        root: folder of the database; overrides the XML's databaseFolderPath unless None.
        cache_dir: folder for derived data (only used for the default XML path here).
        optional: return None instead of raising when no folder is configured.

    Returns:
        The prepared database, or None for an unconfigured optional database. An XML without
        tracks is filled by discovery and rewritten atomically (with the folder used).

    Raises:
        DatasetConfigError: no folder configured (placeholder path), folder missing, or an
            invalid XML.
    """
    if name not in DATABASE_NAMES:
        raise DatasetConfigError(f"Unknown database '{name}'; known databases: {', '.join(DATABASE_NAMES)}")
    if xml_path is None:
        xml_path = os.path.join(cache_dir, f"{name}.xml")
    xml_path = os.path.abspath(xml_path)
    description = read_database_xml(xml_path) if os.path.exists(xml_path) else None
    if description is not None and description.name and description.name != name:
        raise DatasetConfigError(f"{xml_path} describes databaseName '{description.name}' but is configured as "
                                 f"the XML of {name}: fix xml_paths or the file's databaseName")
    stored = description.folder if description is not None else ""
    if root is None:
        if is_placeholder_folder(stored):
            if optional:
                LOGGER.info("Skipping optional database %s: no folder configured in %s", name, xml_path)
                return None
            raise DatasetConfigError(_unconfigured_message(name, xml_path, description))
        folder = os.path.join(os.path.dirname(xml_path), os.path.expanduser(stored))
        setting = f"databaseFolderPath in {xml_path}"
    else:
        folder, setting = os.path.expanduser(os.fspath(root)), f"dataset_roots.{name}"
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DatasetConfigError(f"The {name} folder {folder} (set by {setting}) does not exist: point "
                                 f"{setting} at your {name} copy (expected layout: {_LAYOUT_HINTS[name]})")
    if description is None or not description.tracks:
        # Keep the XML's own databaseFolderPath (it may be relative); a root override is written.
        description = dataclasses.replace(discover_database(name, folder), folder=stored if root is None else folder)
        write_database_xml(xml_path, description)
        LOGGER.info("Wrote the %d discovered %s tracks to %s (edit it to prune songs)",
                    len(description.tracks), name, xml_path)
    database = PreparedDatabase(name=name, xml_path=xml_path, folder=folder, description=description)
    _check_listed_files(database)
    return database


def _check_listed_files(database):
    """Raise FileNotFoundError naming the XML, the track and the first listed file that is missing."""
    for track in database.description.tracks:
        for instrument in track.instruments:
            path = os.path.join(database.folder, *instrument.relative_path.split("/"))
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{path} is listed in {database.xml_path} (track '{track.song_name}') but does not exist: "
                    "restore the file, fix its relativeFilepath, or remove the track (an XML with an empty "
                    "trackList is rediscovered from the folder)")


def _unconfigured_message(name, xml_path, description):
    state = (f"{xml_path} does not exist" if description is None else
             f"{xml_path} still has the placeholder databaseFolderPath '{description.folder}'")
    return (f"No folder is configured for the {name} database ({state}). Either edit databaseFolderPath in "
            f"{xml_path} to point at your {name} folder, or pass it on the command line without editing any "
            f"file: `python Training.py with dataset_roots.{name}=/path/to/{name}`. To try the method on the "
            "built-in demo database instead: `python Training.py with demo`.")


# ----------------------------------------------------------------------------------------------
# Songs with derived audio


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


# ----------------------------------------------------------------------------------------------
# The paper's partition


def partition_dataset(songs_by_database: dict, supervised_database="DSD100",
                      unsupervised_databases=("MedleyDB", "CCMixter", "iKala"),
                      supervised_valid_songs=25) -> dict:
    """Split songs into the four partitions of the paper.

    Args:
        songs_by_database: dict name -> list of :class:`LabelledSong` in XML order; databases
            that are absent (skipped optional ones) contribute nothing.
        supervised_database: its Training songs form ``train_sup``; of its Test songs the first
            ``supervised_valid_songs`` go to ``valid`` and the rest to ``test``.
        unsupervised_databases: for each, in this order, with n = len // 3: the first n songs
            go to ``train_unsup`` (as three unpaired lists), the next n to ``valid``, the rest
            to ``test``.
        supervised_valid_songs: see above (paper: 25 of DSD100's 50 Test songs).

    Returns:
        The dataset dict (see the module docstring); ``valid``/``test`` list the supervised
        database's songs first, then the unsupervised databases in the given order.
    """
    dataset = {"train_sup": [], "train_unsup": [[], [], []], "valid": [], "test": []}
    supervised = songs_by_database.get(supervised_database)
    if supervised is not None:
        for song in supervised:
            if song.split not in SPLITS:
                raise DatasetConfigError(f"Song '{song.triple[0].song}' of the supervised database "
                                         f"{supervised_database} has no databaseSplit: set Training or Test in its XML")
        test_songs = [song.triple for song in supervised if song.split == "Test"]
        if supervised_valid_songs > len(test_songs):
            LOGGER.warning("supervised_valid_songs=%d but %s has only %d Test songs: all go to valid, none to test",
                           supervised_valid_songs, supervised_database, len(test_songs))
        dataset["train_sup"] = [song.triple for song in supervised if song.split == "Training"]
        dataset["valid"] += test_songs[:supervised_valid_songs]
        dataset["test"] += test_songs[supervised_valid_songs:]
    for name in unsupervised_databases:
        triples = [song.triple for song in songs_by_database.get(name, [])]
        third = len(triples) // 3
        for index, samples in enumerate(zip(*triples[:third])):
            dataset["train_unsup"][index].extend(samples)
        dataset["valid"] += triples[third:2 * third]
        dataset["test"] += triples[2 * third:]
    return dataset


def _check_partition_settings(supervised_database, unsupervised_databases, supervised_valid_songs,
                              optional_databases):
    if supervised_database not in SUPERVISED_DATABASES:
        raise DatasetConfigError(f"supervised_database='{supervised_database}' is not supported; use one of "
                                 f"{', '.join(SUPERVISED_DATABASES)}")
    for setting, value in (("unsupervised_databases", unsupervised_databases),
                           ("optional_databases", optional_databases)):
        if isinstance(value, str):
            raise DatasetConfigError(f"{setting}={value!r} must be a list of database names, e.g. ['{value}']")
    for name in list(unsupervised_databases) + list(optional_databases):
        if name not in DATABASE_NAMES:
            raise DatasetConfigError(f"Unknown database '{name}' in the partition settings; known databases: "
                                     f"{', '.join(DATABASE_NAMES)}")
    if supervised_database in unsupervised_databases or len(set(unsupervised_databases)) != len(unsupervised_databases):
        raise DatasetConfigError(f"unsupervised_databases={list(unsupervised_databases)} must list each database "
                                 f"once and not the supervised database {supervised_database}")
    if isinstance(supervised_valid_songs, bool) or not isinstance(supervised_valid_songs, int) \
            or supervised_valid_songs < 0:
        raise DatasetConfigError(f"supervised_valid_songs={supervised_valid_songs!r} must be an integer >= 0")


# ----------------------------------------------------------------------------------------------
# Validation of a dataset dictionary and custom datasets


def validate_dataset(dataset, origin="dataset") -> dict:
    """Check a dataset dict's keys, triple layout and types; return it with tuples as triples.

    Raises:
        DatasetConfigError: naming ``origin`` and the offending key or item.
    """
    if not isinstance(dataset, dict):
        raise DatasetConfigError(f"{origin} returned {type(dataset).__name__}, expected a dict with keys "
                                 f"{', '.join(PARTITION_KEYS)}")
    if set(dataset) != set(PARTITION_KEYS):
        missing, extra = sorted(set(PARTITION_KEYS) - set(dataset)), sorted(set(dataset) - set(PARTITION_KEYS))
        raise DatasetConfigError(f"{origin}: the dataset dict must have exactly the keys {', '.join(PARTITION_KEYS)} "
                                 f"(missing: {missing or 'none'}, unexpected: {extra or 'none'})")
    validated = {key: [_validate_triple(item, f"{origin}: {key}[{index}]")
                       for index, item in enumerate(_as_list(dataset[key], f"{origin}: {key}"))]
                 for key in PAIRED_PARTITIONS}
    unpaired = _as_list(dataset["train_unsup"], f"{origin}: train_unsup")
    if len(unpaired) != 3:
        raise DatasetConfigError(f"{origin}: train_unsup must be three lists [mixtures, accompaniments, voices], "
                                 f"got {len(unpaired)} entries")
    validated["train_unsup"] = [[_validate_sample(sample, f"{origin}: train_unsup[{role}][{index}]")
                                 for index, sample in enumerate(_as_list(samples, f"{origin}: train_unsup[{role}]"))]
                                for role, samples in enumerate(unpaired)]
    return {key: validated[key] for key in PARTITION_KEYS}


def _as_list(value, where):
    if not isinstance(value, (list, tuple)):
        raise DatasetConfigError(f"{where} is a {type(value).__name__}, expected a list")
    return list(value)


def _validate_triple(item, where):
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise DatasetConfigError(f"{where} must be a (mixture, accompaniment, voice) tuple of Samples, got {item!r}")
    return tuple(_validate_sample(sample, f"{where}[{index}] ({role})")
                 for index, (sample, role) in enumerate(zip(item, SOURCE_ORDER)))


def _validate_sample(sample, where):
    if not isinstance(sample, Sample):
        raise DatasetConfigError(f"{where} is a {type(sample).__name__}, expected a Sample "
                                 "(use Sample.from_path(path, database, song))")
    return sample


def load_custom_dataset(spec, kwargs=None) -> dict:
    """Call the user function named ``"package.module:function"`` and validate its dataset dict.

    Args:
        spec: import path of a function; it is called as ``function(**kwargs)`` and must return
            the dict described in the module docstring.
        kwargs: keyword arguments for the function (none by default).
    """
    module_name, separator, function_name = str(spec).partition(":")
    if not separator or not module_name or not function_name:
        raise DatasetConfigError(f"custom_dataset='{spec}' must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise DatasetConfigError(f"custom_dataset='{spec}': cannot import module '{module_name}' ({error}); "
                                 "make sure its folder is on PYTHONPATH or is the working directory") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DatasetConfigError(f"custom_dataset='{spec}': module '{module_name}' has no function '{function_name}'")
    return validate_dataset(function(**(kwargs or {})), origin=f"custom_dataset '{spec}'")


# ----------------------------------------------------------------------------------------------
# dataset.pkl and the entry point


def get_dataset(xml_paths: dict, dataset_roots: dict, cache_dir: str, pkl_path: str,
                supervised_database: str = "DSD100",
                unsupervised_databases=("MedleyDB", "CCMixter", "iKala"),
                supervised_valid_songs: int = 25, optional_databases=(),
                custom_dataset: Optional[str] = None, custom_dataset_kwargs: Optional[dict] = None) -> dict:
    """Build (or load from ``pkl_path``) the dataset dict of the paper's partition.

    Args:
        xml_paths: database name -> XML file; a missing entry means ``<cache_dir>/<name>.xml``.
        dataset_roots: database name -> folder or None; a folder overrides databaseFolderPath.
        cache_dir: folder for derived audio (accompaniments, stem sums, channel splits).
        pkl_path: cache of the built structure; rebuilt when its fingerprint (XML contents,
            roots, listed files' sizes and times, settings, cache_dir, format version) changes,
            when it is unreadable (with a warning) or when a file it lists disappeared.
        supervised_database, unsupervised_databases, supervised_valid_songs: see
            :func:`partition_dataset`.
        optional_databases: databases skipped (with a log line) when no folder is configured;
            any other unconfigured database is a :class:`DatasetConfigError`.
        custom_dataset: ``"package.module:function"`` returning the dataset dict; when given,
            everything else is ignored and nothing is cached.
        custom_dataset_kwargs: keyword arguments for the custom function.

    Returns:
        dict with keys train_sup, train_unsup, valid, test (see the module docstring).
    """
    if custom_dataset:
        return load_custom_dataset(custom_dataset, custom_dataset_kwargs)
    _check_partition_settings(supervised_database, unsupervised_databases, supervised_valid_songs,
                              optional_databases)
    settings = {"supervised_database": supervised_database, "unsupervised_databases": list(unsupervised_databases),
                "supervised_valid_songs": supervised_valid_songs}
    cache_dir = os.path.abspath(cache_dir)
    databases = {}
    for name in [supervised_database, *unsupervised_databases]:
        prepared = prepare_database(name, (xml_paths or {}).get(name), (dataset_roots or {}).get(name), cache_dir,
                                    optional=name in optional_databases)
        if prepared is not None:
            databases[name] = prepared
    fingerprint = dataset_fingerprint(databases, settings, cache_dir)
    dataset = _load_pickle(pkl_path, fingerprint)
    if dataset is None:
        songs = {name: load_database_songs(database, cache_dir) for name, database in databases.items()}
        dataset = validate_dataset(partition_dataset(songs, **settings), origin="Datasets.partition_dataset")
        _save_pickle(pkl_path, fingerprint, dataset)
        LOGGER.info("Built the dataset structure and saved it to %s", pkl_path)
    return dataset


def dataset_fingerprint(databases: dict, settings: dict, cache_dir) -> str:
    """sha256 hex digest of everything a dataset.pkl is built from."""
    payload = {"format_version": DATASET_FORMAT_VERSION, "cache_dir": os.path.abspath(cache_dir),
               "settings": settings, "databases": {}}
    for name, database in sorted(databases.items()):
        with open(database.xml_path, "rb") as handle:
            xml_digest = hashlib.sha256(handle.read()).hexdigest()
        files = []
        for track in database.description.tracks:
            for instrument in track.instruments:
                status = os.stat(os.path.join(database.folder, *instrument.relative_path.split("/")))
                files.append([instrument.relative_path, status.st_size, status.st_mtime_ns])
        payload["databases"][name] = {"xml_path": database.xml_path, "xml_sha256": xml_digest,
                                      "folder": database.folder, "files": files}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _load_pickle(pkl_path, fingerprint):
    """The stored dataset if ``pkl_path`` is readable, current and its files exist; else None."""
    if not os.path.exists(pkl_path):
        return None
    try:
        with open(pkl_path, "rb") as handle:
            stored = pickle.load(handle)
        dataset = stored["dataset"]
        stored_fingerprint = stored["fingerprint"]
    except Exception as error:  # any unpickling failure means: rebuild
        LOGGER.warning("Cannot read %s (%s: %s); rebuilding the dataset structure", pkl_path,
                       type(error).__name__, error)
        return None
    if stored_fingerprint != fingerprint:
        LOGGER.info("%s was built from other XMLs, folders, files or settings; rebuilding it", pkl_path)
        return None
    missing = [sample.path for sample in _all_samples(dataset) if not os.path.isfile(sample.path)]
    if missing:
        LOGGER.warning("%s lists %d file(s) that no longer exist (e.g. %s); rebuilding it", pkl_path,
                       len(missing), missing[0])
        return None
    LOGGER.info("Loaded the dataset structure from %s", pkl_path)
    return dataset


def _save_pickle(pkl_path, fingerprint, dataset):
    with Utils.atomic_write(pkl_path, "wb") as handle:
        pickle.dump({"fingerprint": fingerprint, "format_version": DATASET_FORMAT_VERSION, "dataset": dataset},
                    handle, protocol=pickle.HIGHEST_PROTOCOL)


def _all_samples(dataset):
    for key in PAIRED_PARTITIONS:
        for triple in dataset[key]:
            yield from triple
    for samples in dataset["train_unsup"]:
        yield from samples


# ----------------------------------------------------------------------------------------------
# Summaries


def dataset_table(dataset) -> str:
    """A text table: per partition and database, number of songs (or items) and hours of audio.

    Paired partitions count songs and their mixtures' durations; ``train_unsup`` has one block
    per unpaired list (mixture, accompaniment, voice).
    """
    groups = [(key, [triple[0] for triple in dataset[key]]) for key in PAIRED_PARTITIONS[:1]]
    groups += [(f"train_unsup/{role}", list(samples)) for role, samples in zip(SOURCE_ORDER, dataset["train_unsup"])]
    groups += [(key, [triple[0] for triple in dataset[key]]) for key in PAIRED_PARTITIONS[1:]]
    rows = [("Partition", "Database", "Songs", "Hours")]
    for partition, samples in groups:
        databases = list(dict.fromkeys(sample.database or "(unnamed)" for sample in samples))
        for database in databases:
            chosen = [sample for sample in samples if (sample.database or "(unnamed)") == database]
            rows.append((partition, database, str(len(chosen)), f"{_hours(chosen):.2f}"))
        rows.append((partition, "all", str(len(samples)), f"{_hours(samples):.2f}"))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _hours(samples):
    return sum(sample.duration for sample in samples) / 3600.0


def describe_xml_summary(description: DatabaseDescription, xml_path) -> str:
    """One line: database name, tracks (per split), hours and sample rates of an XML's tracks."""
    splits = [track.split for track in description.tracks if track.split]
    split_text = (" (" + ", ".join(f"{splits.count(split)} {split}" for split in SPLITS if split in splits) + ")"
                  if splits else "")
    rates = sorted({instrument.sample_rate for track in description.tracks for instrument in track.instruments})
    hours = sum(track.duration for track in description.tracks) / 3600.0
    return (f"{description.name}: {len(description.tracks)} tracks{split_text}, {hours:.2f} hours, "
            f"sample rates {', '.join(map(str, rates))} Hz -> {xml_path}")


def main(argv=None):
    """Command line: discover a database folder, write its XML and print a one-line summary."""
    parser = argparse.ArgumentParser(description="Discover the songs of a database folder (public layout) and "
                                                 "write them to its XML track list.")
    parser.add_argument("name", choices=DATABASE_NAMES, help="database layout of ROOT")
    parser.add_argument("root", help="folder of the database")
    parser.add_argument("--xml", help="XML file to write (default: NAME.xml in the working directory)")
    args = parser.parse_args(argv)
    Utils.setup_logging()
    xml_path = os.path.abspath(args.xml or f"{args.name}.xml")
    try:
        if not os.path.isdir(args.root):
            raise DatasetConfigError(f"The {args.name} folder {args.root} does not exist")
        description = discover_database(args.name, args.root)
        write_database_xml(xml_path, description)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        parser.exit(2, f"error: {error}\n")
    print(describe_xml_summary(description, xml_path))


if __name__ == "__main__":
    sys.exit(main())
