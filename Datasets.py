"""Datasets: from the configured XMLs and folders to the paper's partition, cached in dataset.pkl.

Each database is described by an XML (DatasetXML.py), filled by discovery of its public
folder layout when empty (DatasetLayouts.py); its songs, with derived audio such as
accompaniment = mixture - vocals, come from DerivedAudio.py. This module prepares the
configured databases, builds the paper's partition, validates dataset dictionaries (also
custom ones) and caches the result in ``dataset.pkl`` (DatasetCache.py: a file whose reading
cannot run code, and a foreign file at that path is refused, never replaced).

The dataset dictionary
----------------------
:func:`get_dataset` returns a dict with exactly these four keys (the reference's docs named
``train_valid``/``train_test``; those keys do not exist). Items hold the mixture and the
model's sources (``model_config.sources``) in that order; with the default sources they are
``(mixture, accompaniment, voice)`` triples:

- ``"train_sup"``: list of paired songs ``(mixture, *sources)`` of ``Sample``;
- ``"train_unsup"``: independent lists ``[mixtures, *one list per source]`` of ``Sample``
  used unpaired (by default ``[mixtures, accompaniments, voices]``);
- ``"valid"``: list of ``(mixture, *sources)``;
- ``"test"``: list of ``(mixture, *sources)``.

Where each database's sources come from, and how a song that lacks one is used:
databases/Sources.py and databases/Partition.py.

Plain folders of unpaired audio (the setting ``unpaired_folders``, databases/PlainFolders.py)
are added to ``train_unsup``'s lists after the partition, so those lists may differ in length.

A custom dataset is a function returning that dictionary, named as
``custom_dataset="package.module:function"``; it is called with ``custom_dataset_kwargs``
(none by default) and its result is checked by :func:`validate_dataset`.

Command line: ``python Datasets.py NAME ROOT --xml FILE`` discovers the songs in ROOT (NAME one
of DSD100, MedleyDB, CCMixter, iKala, MUSDB18HQ, MUSDB18, SongFolders), writes FILE and prints a one-line
summary.
"""

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
from typing import Optional, Sequence

from common import Utils
from databases import DatasetCache, PlainFolders, SharedSongs, Sources
from databases.DatasetDicts import (  # the dataset dict's own checks and table
    load_custom_dataset,
    validate_dataset,
)
from databases.DatasetLayouts import DATABASE_NAMES, LAYOUT_HINTS, discover_database
from databases.DatasetXML import (
    SPLITS,
    DatabaseDescription,
    DatasetConfigError,
    PreparedDatabase,
    is_placeholder_folder,
    read_database_xml,
    write_database_xml,
)
from databases.DerivedAudio import DATASET_FORMAT_VERSION, load_database_songs
from databases.Partition import (  # the paper's partition, re-exported as part of this module's interface
    _check_supervised_validation,
    partition_dataset,
    without_missing,
)

LOGGER = logging.getLogger(__name__)

SUPERVISED_DATABASES = ("DSD100", "MUSDB18HQ", "MUSDB18", "SongFolders")


def prepare_database(
    name: str, xml_path: Optional[str], root: Optional[str], cache_dir: str, optional: bool = False
) -> Optional[PreparedDatabase]:
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
        raise DatasetConfigError(
            f"{xml_path} describes databaseName '{description.name}' but is configured as "
            f"the XML of {name}: fix xml_paths or the file's databaseName"
        )
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
        raise DatasetConfigError(
            f"The {name} folder {folder} (set by {setting}) does not exist: point "
            f"{setting} at your {name} copy (expected layout: {LAYOUT_HINTS[name]})"
        )
    if description is None or not description.tracks:
        # Keep the XML's own databaseFolderPath (it may be relative); a root override is written.
        description = dataclasses.replace(discover_database(name, folder), folder=stored if root is None else folder)
        write_database_xml(xml_path, description)
        LOGGER.info(
            "Wrote the %d discovered %s tracks to %s (edit it to prune songs)", len(description.tracks), name, xml_path
        )
    database = PreparedDatabase(name=name, xml_path=xml_path, folder=folder, description=description)
    _check_listed_files(database)
    return database


def _check_listed_files(database):
    """Raise for the first listed file that lies outside the database folder (DatasetConfigError)
    or is missing (FileNotFoundError), naming the XML, the track and the file."""
    for track in database.description.tracks:
        for instrument in track.instruments:
            path = database.path_of(track, instrument)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{path} is listed in {database.xml_path} (track '{track.song_name}') but does not exist: "
                    "restore the file, fix its relativeFilepath, or remove the track (an XML with an empty "
                    "trackList is rediscovered from the folder)"
                )


def _unconfigured_message(name, xml_path, description):
    state = (
        f"{xml_path} does not exist"
        if description is None
        else f"{xml_path} still has the placeholder databaseFolderPath '{description.folder}'"
    )
    return (
        f"No folder is configured for the {name} database ({state}). Either edit databaseFolderPath in "
        f"{xml_path} to point at your {name} folder, or pass it on the command line without editing any "
        f"file: `python Training.py with dataset_roots.{name}=/path/to/{name}`. To try the method on the "
        "built-in demo database instead: `python Training.py with demo`."
    )


def _check_partition_settings(
    supervised_database,
    unsupervised_databases,
    supervised_valid_songs,
    optional_databases,
    supervised_validation="test_songs",
):
    if supervised_database not in SUPERVISED_DATABASES:
        raise DatasetConfigError(
            f"supervised_database='{supervised_database}' is not supported; use one of "
            f"{', '.join(SUPERVISED_DATABASES)}"
        )
    for setting, value in (
        ("unsupervised_databases", unsupervised_databases),
        ("optional_databases", optional_databases),
    ):
        if isinstance(value, str):
            raise DatasetConfigError(f"{setting}={value!r} must be a list of database names, e.g. ['{value}']")
    for name in list(unsupervised_databases) + list(optional_databases):
        if name not in DATABASE_NAMES:
            raise DatasetConfigError(
                f"Unknown database '{name}' in the partition settings; known databases: {', '.join(DATABASE_NAMES)}"
            )
    if supervised_database in unsupervised_databases or len(set(unsupervised_databases)) != len(unsupervised_databases):
        raise DatasetConfigError(
            f"unsupervised_databases={list(unsupervised_databases)} must list each database "
            f"once and not the supervised database {supervised_database}"
        )
    if (
        isinstance(supervised_valid_songs, bool)
        or not isinstance(supervised_valid_songs, int)
        or supervised_valid_songs < 0
    ):
        raise DatasetConfigError(f"supervised_valid_songs={supervised_valid_songs!r} must be an integer >= 0")
    _check_supervised_validation(supervised_validation, supervised_database)


def get_dataset(
    xml_paths: dict,
    dataset_roots: dict,
    cache_dir: str,
    pkl_path: str,
    supervised_database: str = "DSD100",
    unsupervised_databases: Sequence[str] = ("MedleyDB", "CCMixter", "iKala"),
    supervised_valid_songs: int = 25,
    supervised_validation: str = "test_songs",
    optional_databases: Sequence[str] = (),
    custom_dataset: Optional[str] = None,
    custom_dataset_kwargs: Optional[dict] = None,
    unpaired_folders: Optional[dict] = None,
    sources: Sequence[str] = ("accompaniment", "voice"),
) -> dict:
    """Build (or load from ``pkl_path``) the dataset dict of the paper's partition.

    Args:
        xml_paths: database name -> XML file; a missing entry means ``<cache_dir>/<name>.xml``.
        dataset_roots: database name -> folder or None; a folder overrides databaseFolderPath.
        cache_dir: folder for derived audio (accompaniments, stem sums, channel splits).
        pkl_path: cache of the built structure; rebuilt when its fingerprint (XML contents,
            roots, listed files' sizes and times, the files under ``unpaired_folders`` with their
            sizes and times, settings, cache_dir, format version) changes,
            when it is damaged (with a warning) or when a file it lists disappeared. A file
            there that is not one of these caches is a :class:`DatasetConfigError`, raised
            before any work (DatasetCache.py).
        supervised_database, unsupervised_databases, supervised_valid_songs,
            supervised_validation: see :func:`partition_dataset`.
        optional_databases: databases skipped (with a log line) when no folder is configured;
            any other unconfigured database is a :class:`DatasetConfigError`.
        custom_dataset: ``"package.module:function"`` returning the dataset dict; when given,
            everything else but ``unpaired_folders`` is ignored and nothing is cached.
        custom_dataset_kwargs: keyword arguments for the custom function.
        unpaired_folders: list name (``mixtures``, ``accompaniment``, ``voice``) -> folder(s)
            whose audio files (sub-folders included) are added to ``train_unsup`` unpaired
            (databases/PlainFolders.py); with or instead of the unsupervised databases' thirds.
        sources: the model's sources (``model_config.sources``): every item is ``(mixture,
            *sources)`` in this order, ``train_unsup`` one list of mixtures and one per source;
            a source folder must name one. Where each database's sources come from, and what
            a database that lacks one gives: databases/Sources.py.

    Returns:
        dict with keys train_sup, train_unsup, valid, test (see the module docstring): the
        partition of :func:`partition_dataset`, then every song that occurs in more than one
        place kept in one partition only (SharedSongs.py; what moved or was dropped is logged),
        then the folder files, less those of songs in train_sup, valid or test.

    Raises:
        DatasetConfigError: wrong settings, folders or files, before any audio is derived.
    """
    sources = tuple(sources)
    folders = PlainFolders.check_unpaired_folders(unpaired_folders, sources)
    if custom_dataset:
        dataset = load_custom_dataset(custom_dataset, custom_dataset_kwargs, sources)
        if folders:
            samples = PlainFolders.read_unpaired_samples(PlainFolders.list_unpaired_files(folders, sources))
            dataset = validate_dataset(PlainFolders.add_to_dataset(dataset, samples, sources)[0], sources=sources)
        return dataset
    _check_partition_settings(
        supervised_database, unsupervised_databases, supervised_valid_songs, optional_databases, supervised_validation
    )
    _check_sources(sources, supervised_database)
    DatasetCache.check_replaceable(pkl_path)  # a foreign file there stops the run before any work
    folder_files = PlainFolders.list_unpaired_files(folders, sources)
    settings = {
        "supervised_database": supervised_database,
        "unsupervised_databases": list(unsupervised_databases),
        "supervised_valid_songs": supervised_valid_songs,
        "supervised_validation": supervised_validation,
        "sources": list(sources),
    }
    cache_dir = os.path.abspath(cache_dir)
    databases = {}
    for name in [supervised_database, *unsupervised_databases]:
        prepared = prepare_database(
            name,
            (xml_paths or {}).get(name),
            (dataset_roots or {}).get(name),
            cache_dir,
            optional=name in optional_databases,
        )
        if prepared is not None:
            databases[name] = prepared
    fingerprint = dataset_fingerprint(
        databases, dict(settings, shared_song_rules=SharedSongs.RULES_VERSION), cache_dir, folder_files
    )
    dataset = DatasetCache.load(
        pkl_path,
        fingerprint,
        lambda stored: validate_dataset(stored, origin=f"the dataset stored in {pkl_path}", sources=sources),
    )
    if dataset is None:
        folder_samples = PlainFolders.read_unpaired_samples(folder_files)  # its errors before any derived audio
        stems = Sources.extra_stems(sources)
        songs = {name: load_database_songs(database, cache_dir, stems) for name, database in databases.items()}
        dataset, _ = SharedSongs.keep_each_song_in_one_partition(partition_dataset(songs, **settings))
        dataset, _ = PlainFolders.add_to_dataset(without_missing(dataset), folder_samples, sources)
        dataset = validate_dataset(dataset, origin="Datasets.partition_dataset", sources=sources)
        DatasetCache.save(pkl_path, fingerprint, dataset)
        LOGGER.info("Built the dataset structure and saved it to %s", pkl_path)
    return dataset


def _check_sources(sources, supervised_database):
    """Before any work: the supervised database gives every source (databases/Sources.py)."""
    lacking = Sources.missing_sources(supervised_database, sources)
    if lacking:
        given = {name for names in Sources.DATABASE_SOURCES.values() for name in names}
        unknown = [f"; {Sources.unknown_source_hint(source)}" for source in lacking if source not in given]
        raise DatasetConfigError(
            f"The supervised database {supervised_database} cannot give {', '.join(lacking)} "
            f"(model_config.sources = {list(sources)}; it gives "
            f"{', '.join(Sources.DATABASE_SOURCES[supervised_database])}): choose another "
            "partition_config.supervised_database (DSD100, MUSDB18HQ and MUSDB18 give drums, bass, other and "
            f"voice), other sources, or a custom_dataset{''.join(unknown)}"
        )


def dataset_fingerprint(databases: dict, settings: dict, cache_dir: str, folder_files: Sequence = ()) -> str:
    """sha256 hex digest of everything a dataset.pkl is built from (``folder_files``: the
    ``PlainFolders.FolderFile`` list of the unpaired folders, each with its size and time)."""
    payload = {
        "format_version": DATASET_FORMAT_VERSION,
        "cache_dir": os.path.abspath(cache_dir),
        "settings": settings,
        "databases": {},
    }
    if folder_files:
        payload["unpaired_folders"] = PlainFolders.fingerprint_entries(folder_files)
    for name, database in sorted(databases.items()):
        with open(database.xml_path, "rb") as handle:
            xml_digest = hashlib.sha256(handle.read()).hexdigest()
        files = []
        for track in database.description.tracks:
            for instrument in track.instruments:
                status = os.stat(database.path_of(track, instrument))
                files.append([instrument.relative_path, status.st_size, status.st_mtime_ns])
        payload["databases"][name] = {
            "xml_path": database.xml_path,
            "xml_sha256": xml_digest,
            "folder": database.folder,
            "files": files,
        }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def describe_xml_summary(description: DatabaseDescription, xml_path: str) -> str:
    """One line: database name, tracks (per split), hours and sample rates of an XML's tracks."""
    splits = [track.split for track in description.tracks if track.split]
    split_text = (
        " (" + ", ".join(f"{splits.count(split)} {split}" for split in SPLITS if split in splits) + ")"
        if splits
        else ""
    )
    rates = sorted({instrument.sample_rate for track in description.tracks for instrument in track.instruments})
    hours = sum(track.duration for track in description.tracks) / 3600.0
    return (
        f"{description.name}: {len(description.tracks)} tracks{split_text}, {hours:.2f} hours, "
        f"sample rates {', '.join(map(str, rates))} Hz -> {xml_path}"
    )


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line: discover a database folder, write its XML and print a one-line summary."""
    parser = argparse.ArgumentParser(
        description="Discover the songs of a database folder (public layout) and write them to its XML track list."
    )
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
