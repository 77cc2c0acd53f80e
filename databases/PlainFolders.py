"""Unpaired training data from plain folders: the setting ``unpaired_folders``.

A user's unpaired data is a folder of songs (mixtures), a folder of a cappella recordings and
a folder of instrumentals, or with four sources folders of drum, bass and other solo recordings.
``unpaired_folders`` maps each unpaired list of ``train_unsup`` (``mixtures`` and each of the
model's sources) to folders: ``{"mixtures": [...], "accompaniment": [...], "voice": [...]}``
or ``{"mixtures": [...], "drums": [...], ...}`` (a folder may be given as a string instead of a
list of one; a key with no folders is ignored, so the default's empty lists fit any sources).
Every audio file under a folder, in sub-folders too (hidden files and folders skipped;
extensions :data:`Sample.AUDIO_EXTENSIONS`, any case), in sorted path order, is added to its
list as one item, with no pairing: the lists need not have the same length and a file's rate
and channels are its own (training reads every file at the model's rate, mono, and gives every
unpaired excerpt the paper's random gain).

Each file is a :class:`Sample` of database :data:`FOLDER_DATABASE`; its song name is the file
name without extension, or its folder's name when the file name is a generic one such as
``mixture`` or ``vocals`` (:data:`GENERIC_FILE_NAMES`, as in a copy of a MUSDB18-HQ song).

Shared songs (the rule of SharedSongs.py, for which these files are another database): a
file that is one of the files of a song in ``train_sup``, ``valid`` or ``test`` (the same file,
symbolic links followed), or whose song name or "<folder name> - <file name>" (each also
without a leading track number such as ``003 - ``) is the name of such a song, is left out of
training, with a log line, so that no validation or test song is trained on. Files that repeat
a song already in ``train_unsup`` are kept (they are training data either way).
"""

import dataclasses
import logging
import os
import re
from typing import Dict, List, Sequence, Tuple

from databases.DatasetXML import DatasetConfigError
from databases.SharedSongs import PARTITION_PRIORITY, SharedSongDecision, song_identity
from databases.Sources import DEFAULT_SOURCES
from Sample import AUDIO_EXTENSIONS, AudioDecoderError, Sample

LOGGER = logging.getLogger(__name__)

# The keys of unpaired_folders of the default sources, in the order of train_unsup's lists.
UNPAIRED_LISTS = ("mixtures",) + DEFAULT_SOURCES
FOLDER_DATABASE = "folders"
SETTING = "unpaired_folders"
GENERIC_FILE_NAMES = frozenset(
    {
        "mixture",
        "mix",
        "vocals",
        "voice",
        "vocal",
        "accompaniment",
        "instrumental",
        "source-01",
        "source-02",
        "bass",
        "drums",
        "other",
    }
)
MAX_NAMED_FILES = 5
_TRACK_NUMBER = re.compile(r"^\d+\s*-\s*")


@dataclasses.dataclass(frozen=True)
class FolderFile:
    """One audio file found under a configured folder, with what its fingerprint needs."""

    role: str  # "mixtures" or one of the model's sources
    folder: str  # the configured folder (absolute)
    path: str  # absolute path of the file
    size: int  # bytes
    mtime_ns: int


def check_unpaired_folders(
    unpaired_folders: object, sources: Sequence[str] = ("accompaniment", "voice")
) -> Dict[str, Tuple[str, ...]]:
    """Validate the ``unpaired_folders`` setting before any work.

    Args:
        unpaired_folders: dict list name -> folder path or list of folder paths; None or empty
            lists mean no folders.
        sources: the model's sources (``model_config.sources``); a source folder must name one
            of them.

    Returns:
        dict list name -> absolute folder paths (``~`` expanded), only for lists with folders.

    Raises:
        DatasetConfigError: not a dict, an unknown list or a source the model does not have, a
            folder that is not a string, does not exist or is not a folder.
    """
    if not unpaired_folders:
        return {}
    if not isinstance(unpaired_folders, dict):
        raise DatasetConfigError(
            f"{SETTING}={unpaired_folders!r} must be a dict such as "
            '{"mixtures": ["/data/songs"], "voice": ["/data/acapellas"]}'
        )
    checked = {}
    for key, value in unpaired_folders.items():
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue  # no folders: nothing to check, whatever the key
        if key != "mixtures" and key not in sources:
            raise DatasetConfigError(
                f"{SETTING}.{key} names a source the model does not have (model_config.sources = {list(sources)}): "
                f"use mixtures or one of the model's sources ({', '.join(source for source in sources)})"
            )
        folders = [value] if isinstance(value, (str, os.PathLike)) else value
        if not isinstance(folders, (list, tuple)) or not all(isinstance(item, (str, os.PathLike)) for item in folders):
            raise DatasetConfigError(f"{SETTING}.{key}={value!r} must be a folder or a list of folders")
        absolute = []
        for folder in folders:
            path = os.path.abspath(os.path.expanduser(os.fspath(folder)))
            if not os.path.isdir(path):
                state = "is not a folder" if os.path.exists(path) else "does not exist"
                raise DatasetConfigError(
                    f"{SETTING}.{key}: the folder {path} {state}; fix the path or remove it from {SETTING}.{key}"
                )
            if path not in absolute:
                absolute.append(path)
        if absolute:
            checked[key] = tuple(absolute)
    return checked


def list_unpaired_files(
    folders: Dict[str, Sequence[str]], sources: Sequence[str] = DEFAULT_SOURCES
) -> List[FolderFile]:
    """Every audio file under the checked folders, list by list in train_unsup's order
    (mixtures, then ``sources``), each folder's files in sorted path order; a file reached
    twice in one list counts once.

    Raises:
        DatasetConfigError: a folder (with its sub-folders) holds no audio file.
    """
    files = []
    for role in ("mixtures",) + tuple(sources):
        seen = set()
        for folder in folders.get(role, ()):
            everything = _audio_files(folder)
            if not everything:
                raise DatasetConfigError(
                    f"{SETTING}.{role}: the folder {folder} holds no audio files ({', '.join(AUDIO_EXTENSIONS)}), "
                    f"neither in it nor in its sub-folders; add files or remove it from {SETTING}.{role}"
                )
            for path in everything:
                if os.path.realpath(path) in seen:
                    continue
                seen.add(os.path.realpath(path))
                status = os.stat(path)
                files.append(
                    FolderFile(role=role, folder=folder, path=path, size=status.st_size, mtime_ns=status.st_mtime_ns)
                )
    return files


def _audio_files(folder):
    paths = []
    for parent, subfolders, names in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        paths += [
            os.path.join(parent, name)
            for name in sorted(names)
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)
        ]
    return sorted(paths, key=lambda path: os.path.relpath(path, folder).split(os.sep))


def fingerprint_entries(files: Sequence[FolderFile]) -> list:
    """JSON-ready ``[list, folder, path, size, mtime]`` rows: a dataset.pkl built from other
    folder contents (a file added, removed, replaced or edited) has another fingerprint."""
    return [[item.role, item.folder, item.path, item.size, item.mtime_ns] for item in files]


def read_unpaired_samples(files: Sequence[FolderFile]) -> Dict[str, List[Sample]]:
    """The Samples of the listed files (headers only), per list.

    Raises:
        DatasetConfigError: files that cannot be read (empty, corrupt, not audio), naming them
            (the first few) and their setting.
        AudioDecoderError: a file needs a decoder that is not installed (the message says how).
    """
    samples = {}
    unreadable = []
    for item in files:
        try:
            sample = Sample.from_path(item.path, database=FOLDER_DATABASE, song=folder_song_name(item.path))
        except AudioDecoderError:
            raise
        except (ValueError, OSError) as error:
            unreadable.append(f"{item.path} ({SETTING}.{item.role}): {error}")
            continue
        samples.setdefault(item.role, []).append(sample)
    if unreadable:
        more = f" and {len(unreadable) - MAX_NAMED_FILES} more" if len(unreadable) > MAX_NAMED_FILES else ""
        raise DatasetConfigError(
            f"{len(unreadable)} file(s) in the {SETTING} folders cannot be read; replace or "
            f"remove them:\n  " + "\n  ".join(unreadable[:MAX_NAMED_FILES]) + more
        )
    return samples


def folder_song_name(path: str) -> str:
    """The song name of a folder file: its name without extension, or its folder's name when
    the file name is generic (``.../Artist - Title/vocals.wav`` -> ``Artist - Title``)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    parent = os.path.basename(os.path.dirname(path))
    return parent if stem.lower() in GENERIC_FILE_NAMES and parent else stem


def add_to_dataset(
    dataset: dict, samples: Dict[str, List[Sample]], sources: Sequence[str] = DEFAULT_SOURCES
) -> Tuple[dict, List[SharedSongDecision]]:
    """``dataset`` with the folder samples appended to ``train_unsup``'s lists (mixtures, then
    ``sources``), leaving out the files of songs that are in ``train_sup``, ``valid`` or
    ``test`` (module docstring).

    Returns:
        ``(new dataset, decisions)``: one "dropped" decision per file left out (each logged).
        The input is not modified.
    """
    kept_by_identity = {}
    for partition in PARTITION_PRIORITY[:-1]:
        for triple in dataset[partition]:
            kept_by_identity.setdefault(song_identity(triple[0]), (partition, triple[0].database))
            for sample in triple:
                kept_by_identity.setdefault(_file_identity(sample.path), (partition, triple[0].database))
    unpaired = [list(items) for items in dataset["train_unsup"]]
    decisions = []
    for index, role in enumerate(("mixtures",) + tuple(sources)):
        for sample in samples.get(role, []):
            found = next((identity for identity in _identities(sample) if identity in kept_by_identity), None)
            if found is None:
                unpaired[index].append(sample)
                continue
            partition, database = kept_by_identity[found]
            decisions.append(
                SharedSongDecision(
                    identity=found,
                    song=f"{sample.song} ({sample.path})",
                    database=FOLDER_DATABASE,
                    action="dropped",
                    source_partition="train_unsup",
                    kept_partition=partition,
                    kept_database=database,
                )
            )
    for decision in decisions:
        LOGGER.info("Shared song: %s", decision.describe())
    if decisions:
        LOGGER.warning(
            "%d file(s) of the %s folders are songs of train_sup, valid or test and were left out of "
            "training (SharedSongs.py; details at INFO level)",
            len(decisions),
            SETTING,
        )
    return dict(dataset, train_unsup=unpaired), decisions


def _file_identity(path):
    return f"file:{os.path.realpath(path)}"


def _identities(sample):
    """The identities a folder file may have: its file's, its song name's and "<folder> - <file>"'s,
    the names also without a leading track number."""
    stem = os.path.splitext(os.path.basename(sample.path))[0]
    parent = os.path.basename(os.path.dirname(sample.path))
    names = [sample.song] + ([f"{parent} - {stem}"] if parent and parent != sample.song else [])
    names += [_TRACK_NUMBER.sub("", name) for name in names if _TRACK_NUMBER.match(name)]
    return [_file_identity(sample.path)] + [song_identity(dataclasses.replace(sample, song=name)) for name in names]
