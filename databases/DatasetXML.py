"""The XML description of a database: its in-memory form, reading and writing.

One XML per database (``database/databaseName``, ``database/databaseFolderPath``,
``database/trackList/track`` with ``title``, ``artist``, ``performer``, optional
``databaseSplit`` (``Training``/``Test``) and ``instrumentList/instrument`` entries with
``relativeFilepath``, ``audioFormat``, ``sampleRate``, ``length`` (seconds), ``numChannels``,
``instrumentName``, ``hasEffects``, ``multipleVoices``). ``relativeFilepath`` is relative to
the database folder: ``databaseFolderPath`` (itself relative to the XML's folder if not
absolute) unless ``dataset_roots[name]`` overrides it. The audio files are authoritative for
sample rate, channels and length; the XML's values are informative. An XML with an empty
track list is filled by discovery from the folder's public layout and written back.
"""

import dataclasses
import os
from typing import Mapping, NamedTuple, Optional, Sequence

from lxml import etree

from common import Utils

INSTRUMENT_NAMES = ("Mix", "Voice", "Instrumental", "Bass", "Drums", "Guitar", "Piano", "Other")
SPLITS = ("Training", "Test")
PLACEHOLDER_PREFIX = "/path/to/"


class DatasetConfigError(ValueError):
    """The data is not configured or described correctly; the message says what to do."""


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
    """A paired song ``(mixture, accompaniment, voice)``, its databaseSplit (or None) and the
    further stems it gives when asked for (``{"drums": Sample, ...}``, see databases/Sources.py)."""

    triple: tuple
    split: Optional[str]
    stems: Optional[Mapping[str, object]] = None

    def item(self, sources: Sequence[str]) -> tuple:
        """``(mixture, *sources)`` in the order of ``sources``; ``None`` for a source the song lacks."""
        given = dict(self.stems or {}, accompaniment=self.triple[1], voice=self.triple[2])
        return (self.triple[0],) + tuple(given.get(source) for source in sources)


@dataclasses.dataclass(frozen=True)
class PreparedDatabase:
    """A database ready to load: its XML path, resolved folder and (possibly discovered) tracks."""

    name: str
    xml_path: str
    folder: str
    description: DatabaseDescription

    def path_of(self, track: Track, instrument: Instrument) -> str:
        """Path of ``instrument``'s file: its relativeFilepath joined to the database folder.

        Raises:
            DatasetConfigError: the path resolves (``..`` and symbolic links followed) to a
                place outside the database folder; the message names the database, the
                track and the path.
        """
        path = os.path.join(self.folder, *instrument.relative_path.split("/"))
        root, resolved = os.path.realpath(self.folder), os.path.realpath(path)
        if os.path.commonpath([root, resolved]) != root:
            lexical = os.path.normpath(os.path.abspath(path))
            link = " through a symbolic link" if os.path.commonpath([root, lexical]) == root else ""
            raise DatasetConfigError(
                f"{self.name} track '{track.song_name}' ({self.xml_path}): relativeFilepath "
                f"'{instrument.relative_path}' leads{link} to {resolved}, outside the database folder {root}. "
                "Every file of a database must lie inside its folder: move or copy the file into it, fix the "
                "relativeFilepath, or remove the track"
            )
        return path


def read_database_xml(xml_path: str) -> DatabaseDescription:
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
            "that line, or restore it (`git checkout -- <file>`) and let discovery fill it"
        ) from error
    root = tree.getroot()
    if root.tag != "database":
        raise DatasetConfigError(f"{xml_path}: the root element is <{root.tag}>, expected <database>")
    tracks = tuple(
        _parse_track(element, xml_path, index)
        for index, element in enumerate(root.iterfind("trackList/track"), start=1)
    )
    return DatabaseDescription(
        name=(root.findtext("databaseName") or "").strip(),
        folder=(root.findtext("databaseFolderPath") or "").strip(),
        tracks=tracks,
    )


def _parse_track(element, xml_path, index):
    title = (element.findtext("title") or "").strip()
    artist = (element.findtext("artist") or "").strip()
    where = f"{xml_path}: track {index} ('{f'{artist} - {title}' if artist else title}')"
    split = (element.findtext("databaseSplit") or "").strip() or None
    if split is not None and split not in SPLITS:
        raise DatasetConfigError(
            f"{where} has databaseSplit '{split}'; use one of {', '.join(SPLITS)} or leave the tag out"
        )
    instruments = tuple(_parse_instrument(node, where) for node in element.iterfind("instrumentList/instrument"))
    if not instruments:
        raise DatasetConfigError(f"{where} lists no instrumentList/instrument entries: add them or remove the track")
    return Track(
        title=title,
        artist=artist,
        performer=(element.findtext("performer") or "").strip(),
        split=split,
        instruments=instruments,
    )


def _parse_instrument(node, where):
    paths = [(path.text or "").strip() for path in node.findall("relativeFilepath")]
    if len(paths) != 1 or not paths[0]:
        raise DatasetConfigError(
            f"{where}: every instrument needs exactly one non-empty relativeFilepath (found {len(paths)})"
        )
    name = (node.findtext("instrumentName") or "").strip()
    if name not in INSTRUMENT_NAMES:
        raise DatasetConfigError(
            f"{where}: instrument {paths[0]} has unknown instrumentName '{name}'; "
            f"valid names are {', '.join(INSTRUMENT_NAMES)}. Fix the name or remove the entry"
        )
    return Instrument(
        relative_path=paths[0],
        name=name,
        audio_format=(node.findtext("audioFormat") or "").strip(),
        sample_rate=_parse_number(node, "sampleRate", int, where),
        length=_parse_number(node, "length", float, where),
        channels=_parse_number(node, "numChannels", int, where),
        has_effects=_parse_bool(node, "hasEffects", True),
        multiple_voices=_parse_bool(node, "multipleVoices", False),
    )


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


def write_database_xml(xml_path: str, description: DatabaseDescription) -> None:
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


def write_empty_xml(xml_path: str, name: str, folder: Optional[str] = None) -> None:
    """Write an XML for database ``name`` without tracks (discovery fills it on first use).

    ``folder`` becomes databaseFolderPath; None writes the placeholder ``/path/to/<name>``.
    """
    write_database_xml(xml_path, DatabaseDescription(name=name, folder=folder or PLACEHOLDER_PREFIX + name, tracks=()))


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


def is_placeholder_folder(folder: Optional[str]) -> bool:
    """True for an unset databaseFolderPath: empty or starting with ``/path/to/``."""
    return not folder or folder.startswith(PLACEHOLDER_PREFIX)
