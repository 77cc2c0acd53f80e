"""Discovery of the public folder layouts: a database folder to its XML description.

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
"""

import logging
import os

import yaml
from tqdm import tqdm

from DatasetXML import DatabaseDescription, DatasetConfigError, Instrument, Track
from Sample import Sample

LOGGER = logging.getLogger(__name__)

DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala", "MUSDB18HQ")
# The singer labels of PAPER.md; spoken-word stems ("male speaker", "female speaker") are not
# singing and stay in the accompaniment.
MEDLEYDB_VOCAL_LABELS = frozenset({
    "male singer", "female singer", "vocalists", "male rapper", "female rapper", "choir"})
MEDLEYDB_MULTIPLE_VOICE_LABELS = frozenset({"vocalists", "choir"})
MEDLEYDB_INSTRUMENT_NAMES = {
    "electric bass": "Bass", "double bass": "Bass",
    "drum set": "Drums", "drum machine": "Drums", "kick drum": "Drums", "snare drum": "Drums",
    "bass drum": "Drums", "toms": "Drums", "auxiliary percussion": "Drums",
    "clean electric guitar": "Guitar", "distorted electric guitar": "Guitar",
    "acoustic guitar": "Guitar", "piano": "Piano", "electric piano": "Piano"}
# (file stem, instrumentName) of the sources of a DSD100 / MUSDB18-HQ song, mixture excluded.
MULTITRACK_SOURCES = (("vocals", "Voice"), ("bass", "Bass"), ("drums", "Drums"), ("other", "Other"))


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
                                 f"Expected layout: {LAYOUT_HINTS[name]}")
    LOGGER.info("Discovered %d %s songs in %s", len(tracks), name, root)
    return DatabaseDescription(name=name, folder=root, tracks=tracks)


LAYOUT_HINTS = {
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
