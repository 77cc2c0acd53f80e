"""Where each database's sources come from: the one table of the project (docs/datasets.md repeats it).

The model's sources are named in ``model_config.sources`` (default ``["accompaniment",
"voice"]``). A database gives the sources of :data:`DATABASE_SOURCES`; the project's name for
the singing voice is ``voice`` everywhere (SiSEC's ``vocals`` appears only in museval JSON,
evaluation/Results.py), and ``vocals`` is refused as a source name (common/Config.py).

=============  ==========================================================================
source         where it comes from
=============  ==========================================================================
DSD100, MUSDB18-HQ (files ``mixture``, ``vocals``, ``drums``, ``bass``, ``other``)
---------------------------------------------------------------------------------------------
voice          ``vocals.wav``
accompaniment  mixture - vocals (as the paper; not drums + bass + other)
drums          ``drums.wav``
bass           ``bass.wav``
other          ``other.wav``
MUSDB18 (``.stem.mp4``: streams 0 mixture, 1 drums, 2 bass, 3 other, 4 vocals)
---------------------------------------------------------------------------------------------
voice          stream 4
accompaniment  stream 0 - stream 4
drums          stream 1
bass           stream 2
other          stream 3
MedleyDB (stems labelled in ``<Name>_METADATA.yaml``; labels -> ``instrumentName`` by the
editable file ``databases/medleydb_stems.yaml`` when the XML is discovered)
---------------------------------------------------------------------------------------------
voice          sum of the ``Voice`` stems (singers)
accompaniment  sum of every other stem
drums          sum of the ``Drums`` stems (drum set, percussion)
bass           sum of the ``Bass`` stems (electric and double bass)
other          sum of the remaining stems (neither Voice, Drums nor Bass)
CCMixter, iKala, SongFolders
---------------------------------------------------------------------------------------------
voice          ``source-02.wav`` / the right channel / ``vocals``
accompaniment  ``source-01.wav`` / the left channel / ``accompaniment`` (or mixture - voice)
=============  ==========================================================================

A song (of any database) that lacks a configured source, e.g. a CCMixter song for the
sources drums, bass, other, voice, or a MUSDB18-HQ song folder without ``drums.wav``, is used
only where it can be (Datasets.partition_dataset): of an unsupervised database's first third
its mixture and the sources it has go to ``train_unsup`` (never a made-up drums stem), its
valid and test thirds are left out (the partition table counts what is left); a song of the
supervised database must give every source (a clear error otherwise).
"""

import os
from typing import Dict, FrozenSet, NamedTuple, Sequence, Tuple

import yaml

from databases.DatasetXML import DatasetConfigError

DEFAULT_SOURCES = ("accompaniment", "voice")
# The paired-song roles every database gives (LabelledSong.triple); the rest are "stems".
TRIPLE_SOURCES = ("accompaniment", "voice")
STEM_SOURCES = ("drums", "bass", "other")
FOUR_STEMS = ("drums", "bass", "other", "voice")

_MULTITRACK = ("accompaniment", "voice", "drums", "bass", "other")
DATABASE_SOURCES: Dict[str, Tuple[str, ...]] = {
    "DSD100": _MULTITRACK,
    "MUSDB18HQ": _MULTITRACK,
    "MUSDB18": _MULTITRACK,
    "MedleyDB": _MULTITRACK,
    "CCMixter": TRIPLE_SOURCES,
    "iKala": TRIPLE_SOURCES,
    "SongFolders": TRIPLE_SOURCES,
}
# MedleyDB instrumentName (databases/medleydb_stems.yaml) -> stem; every other name is "other".
MEDLEYDB_STEM_OF_INSTRUMENT = {"Voice": "voice", "Drums": "drums", "Bass": "bass"}


def extra_stems(sources: Sequence[str]) -> Tuple[str, ...]:
    """The configured sources beyond accompaniment and voice that databases can give
    (drums, bass, other), in ``sources`` order; other names are given by no database."""
    return tuple(source for source in sources if source in STEM_SOURCES)


def medleydb_stem(instrument_name: str) -> str:
    """The stem (drums, bass, other or voice) a MedleyDB stem of XML ``instrumentName`` feeds."""
    return MEDLEYDB_STEM_OF_INSTRUMENT.get(instrument_name, "other")


def missing_sources(database: str, sources: Sequence[str]) -> Tuple[str, ...]:
    """The configured ``sources`` that database ``database`` cannot give at all."""
    return tuple(source for source in sources if source not in DATABASE_SOURCES.get(database, ()))


def unknown_source_hint(source: str) -> str:
    """A sentence for a source that no database gives (e.g. a typo)."""
    known = sorted({name for names in DATABASE_SOURCES.values() for name in names})
    return (
        f"no database gives a source named {source!r} (they give {', '.join(known)}); such a source can "
        "come only from a custom_dataset and unpaired_folders"
    )


# MedleyDB's instrument labels -> instrumentName, and the labels of several singers: an editable
# data file (the singer labels of PAPER.md; spoken word is not singing and stays in the accompaniment).
MEDLEYDB_STEMS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "medleydb_stems.yaml")
MEDLEYDB_INSTRUMENTS = ("Voice", "Drums", "Bass", "Guitar", "Piano", "Other")


class MedleyDBLabels(NamedTuple):
    """The contents of :data:`MEDLEYDB_STEMS_FILE`: label -> instrumentName, and the labels
    whose stem holds several singers; labels in lower case."""

    instrument_of: Dict[str, str]
    multiple_voices: FrozenSet[str]

    @property
    def vocal(self) -> FrozenSet[str]:
        """The labels of singing (instrumentName Voice)."""
        return frozenset(label for label, name in self.instrument_of.items() if name == "Voice")


def read_medleydb_labels(path: str = MEDLEYDB_STEMS_FILE) -> MedleyDBLabels:
    """Read the label mapping of MedleyDB (see the file's comments for its format).

    Raises:
        DatasetConfigError: the file is missing, not YAML, or names an unknown instrumentName,
            a label that is not a string, or one label under two names (the message names the file).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        raise DatasetConfigError(f"Cannot read the MedleyDB label mapping {path}: {error}") from error
    if not isinstance(content, dict):
        raise DatasetConfigError(f"{path} must map instrumentNames ({', '.join(MEDLEYDB_INSTRUMENTS)}) to label lists")
    instrument_of, multiple = {}, frozenset()
    for key, labels in content.items():
        if key not in MEDLEYDB_INSTRUMENTS + ("multiple_voices",):
            raise DatasetConfigError(
                f"{path}: unknown key {key!r}; use {', '.join(MEDLEYDB_INSTRUMENTS)} or multiple_voices"
            )
        if not isinstance(labels, list) or not all(isinstance(label, str) and label.strip() for label in labels):
            raise DatasetConfigError(f"{path}: {key} must be a list of instrument labels (strings)")
        labels = [label.strip().lower() for label in labels]
        if key == "multiple_voices":
            multiple = frozenset(labels)
            continue
        for label in labels:
            if instrument_of.setdefault(label, key) != key:
                raise DatasetConfigError(
                    f"{path}: the label {label!r} is listed under {instrument_of[label]} and {key}"
                )
    return MedleyDBLabels(instrument_of, multiple)
