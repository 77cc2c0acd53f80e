"""Discovery of the public folder layouts: a database folder to its XML description.

``instrumentName`` per database (derived audio is never listed, it is computed at load time):

- DSD100 / MUSDB18HQ: ``Mix`` (mixture.wav), ``Voice`` (vocals.wav), and ``Bass``, ``Drums``,
  ``Other`` when present (they are not used, so a song folder with only mixture.wav and
  vocals.wav is complete); accompaniment = Mix - Voice.
- SongFolders (your own paired songs): every folder under the root that holds files named as in
  :data:`SONG_FOLDER_FILES` (any extension of ``Sample.AUDIO_EXTENSIONS``, any case) is a song:
  ``Mix`` (mixture, mix), ``Voice`` (vocals, voice), ``Instrumental`` (accompaniment,
  instrumental); at least two of the three. A missing one is derived (DerivedAudio.py:
  accompaniment = mixture - voice, voice = mixture - accompaniment, mixture = accompaniment +
  voice). Songs under a top-level ``train/`` (``test/``) folder get databaseSplit Training
  (Test), other songs none.
- MUSDB18 (the ``.stem.mp4`` release): one ``Mix`` entry per track, the stem file itself
  (``relativeFilepath`` ``train/<Artist - Title>.stem.mp4``, ``audioFormat`` ``stem.mp4``,
  sampleRate, length and numChannels of its mixture stream). The file holds
  :data:`MUSDB18_STREAMS` (5 AAC streams: 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals);
  mixture = stream 0, voice = stream 4, accompaniment = mixture - voice, decoded once into
  the cache (DerivedAudio.py). The track name is the file name without ``.stem.mp4``, split
  Training (train/) or Test (test/); musdb's official validation tracks
  (:func:`musdb_validation_tracks`) are a subset of train/.
- MedleyDB: ``Mix`` (the _MIX.wav, used for its sample rate only) and one entry per stem:
  its instrumentName from its labels by the editable file :data:`Sources.MEDLEYDB_STEMS_FILE`
  (``Voice`` for singers, ``Drums``, ``Bass``, ``Guitar``, ``Piano``, else ``Other``).
  Voice = sum of the ``Voice`` stems (silence if none), accompaniment = sum of all other
  stems, mixture = voice + accompaniment; drums, bass, other: databases/Sources.py.
- CCMixter: ``Mix`` (mix.wav), ``Instrumental`` (source-01.wav), ``Voice`` (source-02.wav).
- iKala: ``Mix`` (the stereo Wavfile/<id>.wav); accompaniment = left channel, voice = right
  channel, mixture = left + right (all three mono).
"""

import importlib.util
import logging
import os
import types
from typing import TYPE_CHECKING

import ffmpeg
import yaml
from tqdm import tqdm

from databases.DatasetXML import DatabaseDescription, DatasetConfigError, Instrument, Track
from databases.Sources import read_medleydb_labels
from Sample import AUDIO_EXTENSIONS, FFMPEG_INSTALL_HINT, AudioDecoderError, Sample

if TYPE_CHECKING:  # stempeg refuses to import without ffmpeg: see import_stempeg
    import stempeg

LOGGER = logging.getLogger(__name__)

DATABASE_NAMES = ("DSD100", "MedleyDB", "CCMixter", "iKala", "MUSDB18HQ", "MUSDB18", "SongFolders")
# (file stem, instrumentName) of the sources of a DSD100 / MUSDB18-HQ song, mixture excluded;
# only the vocals are needed (accompaniment = mixture - vocals), the other stems are listed if present.
MULTITRACK_SOURCES = (("vocals", "Voice"), ("bass", "Bass"), ("drums", "Drums"), ("other", "Other"))
MULTITRACK_REQUIRED = ("vocals",)
# SongFolders: instrumentName -> the file names (without extension, any case) that hold it.
SONG_FOLDER_FILES = {
    "Mix": ("mixture", "mix"),
    "Voice": ("vocals", "voice"),
    "Instrumental": ("accompaniment", "instrumental"),
}
SONG_FOLDER_SPLITS = {"train": "Training", "test": "Test"}
# The audio streams of a MUSDB18 .stem.mp4 file, in stream order (musdb's mus.yaml stem_ids).
MUSDB18_STREAMS = ("mixture", "drums", "bass", "other", "vocals")
MUSDB18_EXTENSION = ".stem.mp4"


def discover_database(name: str, root: str) -> DatabaseDescription:
    """List the songs of database ``name`` found in folder ``root`` in a fixed (sorted) order.

    Reads sample rate, channels and length from every file's header.

    Raises:
        DatasetConfigError: unknown name, or ``root`` holds no songs in the expected layout
            (or a MUSDB18 stem file lacks streams).
        FileNotFoundError: a song folder lacks one of its files.
        ValueError: a file is corrupt (the message names it).
    """
    discoverers = {
        "DSD100": _discover_dsd100,
        "MUSDB18HQ": _discover_musdb18hq,
        "MUSDB18": _discover_musdb18,
        "MedleyDB": _discover_medleydb,
        "CCMixter": _discover_ccmixter,
        "iKala": _discover_ikala,
        "SongFolders": _discover_song_folders,
    }
    if name not in discoverers:
        raise DatasetConfigError(f"Unknown database '{name}'; known databases: {', '.join(DATABASE_NAMES)}")
    root = os.path.abspath(root)
    tracks = tuple(discoverers[name](root))
    if not tracks:
        raise DatasetConfigError(
            f"Found no {name} songs in {root}: is it the right folder? Expected layout: {LAYOUT_HINTS[name]}"
        )
    LOGGER.info("Discovered %d %s songs in %s", len(tracks), name, root)
    return DatabaseDescription(name=name, folder=root, tracks=tracks)


LAYOUT_HINTS = {
    "DSD100": "Mixtures/{Dev,Test}/<NNN - Artist - Title>/mixture.wav and "
    "Sources/{Dev,Test}/<same>/{bass,drums,other,vocals}.wav",
    "MUSDB18HQ": "{train,test}/<Artist - Title>/{mixture,vocals,bass,drums,other}.wav",
    "MUSDB18": "{train,test}/<Artist - Title>.stem.mp4 (5 streams: mixture, drums, bass, other, vocals)",
    "MedleyDB": "Audio/<Name>/<Name>_MIX.wav, Audio/<Name>/<Name>_STEMS/<Name>_STEM_NN.wav and "
    "Audio/<Name>/<Name>_METADATA.yaml",
    "CCMixter": "<Artist_-_Title>/{mix,source-01,source-02}.wav",
    "iKala": "Wavfile/<id>.wav (stereo: accompaniment left, voice right)",
    "SongFolders": "[train/|test/]<song>/ with two or three of mixture (or mix), vocals (or voice) and "
    f"accompaniment (or instrumental), each {'/'.join(AUDIO_EXTENSIONS)}",
}


def _sorted_entries(folder, want_dirs):
    """Sorted names of the non-hidden sub-folders (or files) of ``folder``; [] if it is missing."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        entry
        for entry in os.listdir(folder)
        if not entry.startswith(".") and os.path.isdir(os.path.join(folder, entry)) == want_dirs
    )


def _describe_file(root, relative_path, instrument_name, multiple_voices=False):
    """An Instrument entry for the file ``root/relative_path`` with metadata from its header."""
    path = os.path.join(root, *relative_path.split("/"))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Expected file {path} is missing: restore it, or remove the whole song folder if the song is incomplete"
        )
    sample = Sample.from_path(path)
    return Instrument(
        relative_path=relative_path,
        name=instrument_name,
        audio_format=os.path.splitext(path)[1].lstrip(".").lower(),
        sample_rate=sample.sample_rate,
        length=sample.duration,
        channels=sample.channels,
        has_effects=True,
        multiple_voices=multiple_voices,
    )


def _discover_dsd100(root):
    layout = [
        (f"Mixtures/{folder}", f"Sources/{folder}", split) for folder, split in (("Dev", "Training"), ("Test", "Test"))
    ]
    return _discover_multitrack(root, layout, artist_title_from=_dsd100_artist_title)


def _discover_musdb18hq(root):
    layout = [(folder, folder, split) for folder, split in (("train", "Training"), ("test", "Test"))]
    return _discover_multitrack(root, layout, artist_title_from=_split_artist_title)


def _discover_musdb18(root):
    tracks = []
    for folder, split in (("train", "Training"), ("test", "Test")):
        names = [
            name
            for name in _sorted_entries(os.path.join(root, folder), want_dirs=False)
            if name.lower().endswith(MUSDB18_EXTENSION)
        ]
        for name in tqdm(names, desc=f"Reading MUSDB18 {folder}", unit="song", leave=False, disable=None):
            instrument = _describe_stem_file(root, f"{folder}/{name}")
            artist, title = _split_artist_title(name[: -len(MUSDB18_EXTENSION)])
            tracks.append(Track(title=title, artist=artist, performer=artist, split=split, instruments=(instrument,)))
    return tracks


def _describe_stem_file(root, relative_path):
    """The ``Mix`` Instrument entry of a MUSDB18 stem file, with its mixture stream's metadata."""
    path = os.path.join(root, *relative_path.split("/"))
    info = stem_file_info(path)
    return Instrument(
        relative_path=relative_path,
        name="Mix",
        audio_format=MUSDB18_EXTENSION.lstrip("."),
        sample_rate=info.sample_rate(0),
        length=info.duration(0),
        channels=info.channels(0),
        has_effects=True,
        multiple_voices=True,
    )


def import_stempeg() -> types.ModuleType:
    """The stempeg module, imported when first needed: it refuses to import without ffmpeg and
    ffprobe, which only MUSDB18's stem files (and museval) need.

    Raises:
        AudioDecoderError: ffmpeg or ffprobe is not installed (the message says how to install it).
    """
    try:
        import stempeg
    except RuntimeError as error:  # stempeg looks for both programs when it is imported
        raise AudioDecoderError(
            f"Reading MUSDB18 stem files needs ffmpeg and ffprobe ({error}): {FFMPEG_INSTALL_HINT}"
        ) from error
    return stempeg


def stem_file_info(path: str) -> "stempeg.Info":
    """ffprobe metadata of a MUSDB18 stem file, checked to hold the streams of :data:`MUSDB18_STREAMS`.

    Returns:
        stempeg.Info: ``sample_rate(k)`` (Hz), ``channels(k)``, ``duration(k)`` (seconds) and
        ``samples(k)`` of audio stream k; ``audio_stream_idx()[k]`` is its index in the file.

    Raises:
        AudioDecoderError: ffprobe is not installed.
        ValueError: the file is not a readable MP4 (corrupt or truncated).
        DatasetConfigError: fewer audio streams than :data:`MUSDB18_STREAMS`, or streams with
            different channel counts.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected file {path} is missing: restore it, or remove its track")
    stempeg = import_stempeg()
    try:
        info = stempeg.Info(path)
    except FileNotFoundError as error:  # the ffprobe program itself
        raise AudioDecoderError(
            f"ffprobe is needed to read the MUSDB18 stem file {path} but was not found: {FFMPEG_INSTALL_HINT}"
        ) from error
    except ffmpeg.Error as error:
        detail = (error.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise ValueError(
            f"Cannot read the MUSDB18 stem file {path}: it is corrupt or not an MP4 file "
            f"(ffprobe: {detail[-1] if detail else error}). Replace it with the original "
            "or remove it from the dataset"
        ) from error
    if info.nb_audio_streams < len(MUSDB18_STREAMS):
        raise DatasetConfigError(
            f"MUSDB18 stem file {path} has {info.nb_audio_streams} audio stream(s), expected "
            f"{len(MUSDB18_STREAMS)} ({', '.join(MUSDB18_STREAMS)}): replace it with the original MUSDB18 "
            "file, or remove it from the dataset"
        )
    try:
        channels = info.channels_streams
        metadata = (info.sample_rate(0), info.duration(0))
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"MUSDB18 stem file {path}: ffprobe reports no {error} for its audio streams; the file "
            "is damaged: replace it with the original"
        ) from error
    if len(set(channels)) != 1 or min(metadata) <= 0:
        raise DatasetConfigError(
            f"MUSDB18 stem file {path} has streams with channel counts {channels}, sample "
            f"rate {metadata[0]} Hz and duration {metadata[1]} s: MUSDB18 streams all have "
            "the same channel count and audio. Replace it with the original MUSDB18 file"
        )
    return info


def musdb_validation_tracks() -> tuple:
    """Names ("Artist - Title") of MUSDB18's official validation tracks, a subset of its train/
    folder: musdb's ``split='valid'``, read from the installed musdb package's configs/mus.yaml."""
    spec = importlib.util.find_spec("musdb")  # its file only: importing musdb would need ffmpeg
    if spec is None or not spec.submodule_search_locations:
        raise DatasetConfigError("The musdb package is not installed: `pip install -r requirements.txt`")
    path = os.path.join(spec.submodule_search_locations[0], "configs", "mus.yaml")
    with open(path, encoding="utf-8") as handle:
        names = (yaml.safe_load(handle) or {}).get("validation_tracks")
    if not names:
        raise DatasetConfigError(
            f"{path} (of the installed musdb package) lists no validation_tracks: "
            "reinstall musdb (`pip install -r requirements.txt`)"
        )
    return tuple(str(name) for name in names)


def _discover_multitrack(root, layout, artist_title_from):
    """Songs of a DSD100-like layout: [(mixtures folder, sources folder, split)] under ``root``."""
    tracks = []
    for mixture_folder, source_folder, split in layout:
        songs = _sorted_entries(os.path.join(root, *mixture_folder.split("/")), want_dirs=True)
        for song in tqdm(songs, desc=f"Reading {mixture_folder}", unit="song", leave=False, disable=None):
            instruments = [_describe_file(root, f"{mixture_folder}/{song}/mixture.wav", "Mix", True)]
            instruments += [
                _describe_file(root, f"{source_folder}/{song}/{stem}.wav", name, name == "Voice")
                for stem, name in MULTITRACK_SOURCES
                if stem in MULTITRACK_REQUIRED or os.path.isfile(os.path.join(root, source_folder, song, f"{stem}.wav"))
            ]
            artist, title = artist_title_from(song)
            tracks.append(
                Track(title=title, artist=artist, performer=artist, split=split, instruments=tuple(instruments))
            )
    return tracks


def _discover_song_folders(root):
    """Songs of the SongFolders layout (module docstring), in sorted order of their folders."""
    tracks = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        files = _song_folder_files(folder, names)
        if not files:
            continue
        relative = os.path.relpath(folder, root).replace(os.sep, "/")
        if len(files) < 2:
            raise DatasetConfigError(
                f"Song folder {folder} holds only {next(iter(files.values()))}: a song folder needs two or three of "
                "mixture (or mix), vocals (or voice) and accompaniment (or instrumental); add the missing file or "
                "move this one out of the database folder"
            )
        prefix = "" if relative == "." else relative + "/"
        instruments = tuple(
            _describe_file(root, prefix + files[name], name) for name in SONG_FOLDER_FILES if name in files
        )
        parts = relative.split("/")
        split = SONG_FOLDER_SPLITS.get(parts[0].lower()) if len(parts) > 1 else None
        artist, title = _split_artist_title(os.path.basename(os.path.abspath(folder)))
        tracks.append(Track(title=title, artist=artist, performer=artist, split=split, instruments=instruments))
    return tracks


def _song_folder_files(folder, names):
    """instrumentName -> file name of the SongFolders files among ``names`` (in ``folder``).

    Raises:
        DatasetConfigError: two files of the folder hold the same instrument.
    """
    found = {}
    for name in sorted(names):
        stem, extension = os.path.splitext(name)
        if name.startswith(".") or extension.lower() not in AUDIO_EXTENSIONS:
            continue
        for instrument, stems in SONG_FOLDER_FILES.items():
            if stem.lower() in stems:
                found.setdefault(instrument, []).append(name)
    for instrument, files in found.items():
        if len(files) > 1:
            raise DatasetConfigError(
                f"Song folder {folder} holds {len(files)} files for its {instrument}: "
                f"{', '.join(files)}; keep one of them in the folder"
            )
    return {instrument: files[0] for instrument, files in found.items()}


def _dsd100_artist_title(folder_name):
    parts = folder_name.split(" - ", 2)
    return (parts[1], parts[2]) if len(parts) == 3 else ("", folder_name)


def _split_artist_title(folder_name, separator=" - "):
    artist, found, title = folder_name.partition(separator)
    return (artist.strip(), title.strip()) if found else ("", folder_name)


def _discover_medleydb(root):
    mapping = read_medleydb_labels()
    tracks = []
    for name in tqdm(
        _sorted_entries(os.path.join(root, "Audio"), want_dirs=True),
        desc="Reading MedleyDB",
        unit="song",
        leave=False,
        disable=None,
    ):
        metadata = _read_medleydb_metadata(root, name)
        instruments = [_describe_file(root, f"Audio/{name}/{name}_MIX.wav", "Mix", True)]
        for stem_id, stem in sorted(metadata["stems"].items()):
            instruments.append(_medleydb_stem(root, name, stem_id, stem, mapping))
        artist, title = _split_artist_title(name, "_")
        tracks.append(
            Track(
                title=str(metadata.get("title") or title),
                artist=str(metadata.get("artist") or artist),
                performer=str(metadata.get("artist") or artist),
                split=None,
                instruments=tuple(instruments),
            )
        )
    return tracks


def _read_medleydb_metadata(root, name):
    """The parsed <Name>_METADATA.yaml (beside the audio, or in MedleyDB's Metadata/ folder)."""
    candidates = [
        os.path.join(root, "Audio", name, f"{name}_METADATA.yaml"),
        os.path.join(root, "Metadata", f"{name}_METADATA.yaml"),
    ]
    path = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
    if path is None:
        raise FileNotFoundError(f"MedleyDB song {name} has no metadata file: expected {candidates[0]}")
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise DatasetConfigError(f"{path} is not valid YAML ({error}): restore the original file") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("stems"), dict) or not metadata["stems"]:
        raise DatasetConfigError(
            f"{path} has no 'stems' mapping (S01: {{filename: ..., instrument: ...}}): restore the original file"
        )
    return metadata


def _medleydb_stem(root, name, stem_id, stem, mapping):
    if not isinstance(stem, dict) or not stem.get("filename"):
        raise DatasetConfigError(f"MedleyDB song {name}: stem {stem_id} in its METADATA.yaml has no 'filename'")
    labels = stem.get("instrument") or []
    labels = {str(label).strip().lower() for label in (labels if isinstance(labels, list) else [labels])}
    if labels & mapping.vocal:
        instrument_name = "Voice"
    else:
        instrument_name = next(
            (mapping.instrument_of[label] for label in sorted(labels) if label in mapping.instrument_of), "Other"
        )
    return _describe_file(
        root,
        f"Audio/{name}/{name}_STEMS/{stem['filename']}",
        instrument_name,
        multiple_voices=bool(labels & mapping.multiple_voices),
    )


def _discover_ccmixter(root):
    tracks = []
    for name in tqdm(
        _sorted_entries(root, want_dirs=True), desc="Reading CCMixter", unit="song", leave=False, disable=None
    ):
        instruments = (
            _describe_file(root, f"{name}/mix.wav", "Mix", True),
            _describe_file(root, f"{name}/source-01.wav", "Instrumental", True),
            _describe_file(root, f"{name}/source-02.wav", "Voice"),
        )
        artist, title = _split_artist_title(name, "_-_")
        artist, title = artist.replace("_", " "), title.replace("_", " ")
        tracks.append(Track(title=title, artist=artist, performer=artist, split=None, instruments=instruments))
    return tracks


def _discover_ikala(root):
    tracks = []
    files = [
        name
        for name in _sorted_entries(os.path.join(root, "Wavfile"), want_dirs=False)
        if name.lower().endswith(".wav")
    ]
    for name in tqdm(files, desc="Reading iKala", unit="song", leave=False, disable=None):
        instrument = _describe_file(root, f"Wavfile/{name}", "Mix", True)
        if instrument.channels != 2:
            raise DatasetConfigError(
                f"iKala file {os.path.join(root, 'Wavfile', name)} has {instrument.channels} "
                "channel(s); iKala clips are stereo (accompaniment left, voice right)"
            )
        tracks.append(
            Track(title=os.path.splitext(name)[0], artist="", performer="", split=None, instruments=(instrument,))
        )
    return tracks
