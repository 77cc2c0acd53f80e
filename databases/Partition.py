"""The paper's partition of the databases' songs into train_sup, train_unsup, valid and test.

Items are ``(mixture, *sources)`` in the order of the configured sources (``model_config.sources``);
``train_unsup`` is one list of mixtures plus one list per source. A song that lacks a configured
source (databases/Sources.py) is used only where it can be: see :func:`partition_dataset`.
"""

import logging
from typing import Sequence

from databases.DatasetLayouts import musdb_validation_tracks
from databases.DatasetXML import SPLITS, DatasetConfigError
from databases.Sources import DEFAULT_SOURCES

LOGGER = logging.getLogger(__name__)

# supervised_validation: "test_songs" = the paper's rule (the first supervised_valid_songs Test
# songs are valid); "musdb_valid" = musdb's official validation tracks (split='valid') of train.
SUPERVISED_VALIDATION_RULES = ("test_songs", "musdb_valid")
MUSDB_VALID_DATABASES = ("MUSDB18", "MUSDB18HQ")


def partition_dataset(
    songs_by_database: dict,
    supervised_database: str = "DSD100",
    unsupervised_databases: Sequence[str] = ("MedleyDB", "CCMixter", "iKala"),
    supervised_valid_songs: int = 25,
    supervised_validation: str = "test_songs",
    sources: Sequence[str] = DEFAULT_SOURCES,
) -> dict:
    """Split songs into the four partitions of the paper.

    Args:
        songs_by_database: dict name -> list of :class:`LabelledSong` in XML order; databases
            that are absent (skipped optional ones) contribute nothing.
        supervised_database: its Training songs form ``train_sup``; of its Test songs the first
            ``supervised_valid_songs`` go to ``valid`` and the rest to ``test``. Every song of
            it must give every source.
        unsupervised_databases: for each, in this order, with n = len // 3: the first n songs
            go to ``train_unsup`` (as unpaired lists), the next n to ``valid``, the rest to
            ``test``. A song that lacks a source gives ``train_unsup`` its mixture and the
            sources it has (``None`` in the lists it cannot fill, removed by
            :func:`without_missing`), and is left out of ``valid`` and ``test`` (logged).
        supervised_valid_songs: see above (paper: 25 of DSD100's 50 Test songs).
        supervised_validation: ``"test_songs"`` (the paper's rule above) or ``"musdb_valid"``
            (MUSDB18 / MUSDB18HQ only): musdb's official validation tracks (its
            ``split='valid'``, :func:`DatasetLayouts.musdb_validation_tracks`) among the
            Training songs go to ``valid``, the other Training songs to ``train_sup`` and all
            Test songs to ``test``; ``supervised_valid_songs`` is then not used.
        sources: the model's sources (``model_config.sources``): items are
            ``(mixture, *sources)`` in this order.

    Raises:
        DatasetConfigError: a supervised song without databaseSplit or without one of the
            sources, an invalid ``supervised_validation``, or "musdb_valid" when none of the
            validation tracks is among the Training songs.

    Returns:
        The dataset dict (see Datasets.py); ``valid``/``test`` list the supervised
        database's songs first, then the unsupervised databases in the given order.
    """
    _check_supervised_validation(supervised_validation, supervised_database)
    sources = tuple(sources)
    dataset = {"train_sup": [], "train_unsup": [[] for _ in range(1 + len(sources))], "valid": [], "test": []}
    supervised = songs_by_database.get(supervised_database)
    if supervised is not None:
        for song in supervised:
            if song.split not in SPLITS:
                raise DatasetConfigError(
                    f"Song '{song.triple[0].song}' of the supervised database "
                    f"{supervised_database} has no databaseSplit: set Training or Test in its XML"
                )
            lacking = [name for name, sample in zip(sources, song.item(sources)[1:]) if sample is None]
            if lacking:
                raise DatasetConfigError(
                    f"Song '{song.triple[0].song}' of the supervised database {supervised_database} has no "
                    f"{', '.join(lacking)} (model_config.sources = {list(sources)}): the paired songs must give "
                    "every source (databases/Sources.py); add its files or remove the song from the XML"
                )
        test_songs = [song.item(sources) for song in supervised if song.split == "Test"]
        if supervised_validation == "musdb_valid":
            dataset["train_sup"], dataset["valid"] = _musdb_validation_split(supervised, supervised_database, sources)
            dataset["test"] += test_songs
        else:
            if supervised_valid_songs > len(test_songs):
                LOGGER.warning(
                    "supervised_valid_songs=%d but %s has only %d Test songs: all go to valid, none to test",
                    supervised_valid_songs,
                    supervised_database,
                    len(test_songs),
                )
            dataset["train_sup"] = [song.item(sources) for song in supervised if song.split == "Training"]
            dataset["valid"] += test_songs[:supervised_valid_songs]
            dataset["test"] += test_songs[supervised_valid_songs:]
    for name in unsupervised_databases:
        items = [song.item(sources) for song in songs_by_database.get(name, [])]
        third = len(items) // 3
        for index, samples in enumerate(zip(*items[:third])):
            dataset["train_unsup"][index].extend(samples)
        evaluated = items[third:]
        complete = [item for item in evaluated if None not in item]
        if len(complete) < len(evaluated):
            lacking = sorted(
                {source for item in evaluated for source, sample in zip(sources, item[1:]) if sample is None}
            )
            LOGGER.warning(
                "%s: %d of its %d valid and test songs lack %s (databases/Sources.py) and are left out of "
                "valid and test; its train_unsup third gives only the mixtures and the sources it has",
                name,
                len(evaluated) - len(complete),
                len(evaluated),
                ", ".join(lacking),
            )
        dataset["valid"] += [item for item in items[third : 2 * third] if None not in item]
        dataset["test"] += [item for item in items[2 * third :] if None not in item]
    return dataset


def without_missing(dataset: dict) -> dict:
    """The dataset with the ``None`` placeholders of :func:`partition_dataset` removed from
    ``train_unsup``'s lists (sources a song could not give), and without the paired items that
    lack a source (a clip the shared-song rule moved out of ``train_unsup``; logged)."""
    unpaired = [[sample for sample in samples if sample is not None] for samples in dataset["train_unsup"]]
    paired = {}
    for key in ("train_sup", "valid", "test"):
        paired[key] = [item for item in dataset[key] if None not in item]
        for item in dataset[key]:
            if None in item:
                LOGGER.warning("%s: left out of %s, it lacks a source (databases/Sources.py)", item[0].path, key)
    return dict(dataset, train_unsup=unpaired, **paired)


def _musdb_validation_split(songs, database, sources):
    """``(train_sup, valid)`` triples of ``supervised_validation="musdb_valid"``, both in XML order.

    valid = the Training songs named ("Artist - Title") in musdb's validation list, train_sup
    = the other Training songs. Validation tracks that are missing are logged.
    """
    expected = musdb_validation_tracks()
    training = [song.item(sources) for song in songs if song.split == "Training"]
    valid = [triple for triple in training if triple[0].song in expected]
    if not valid:
        raise DatasetConfigError(
            f"supervised_validation='musdb_valid' but none of musdb's {len(expected)} validation tracks is a "
            f"Training song of {database} (expected: {'; '.join(expected)}). Use the complete {database} "
            "(its train/ folder), restore those tracks in its XML, or set "
            "partition_config.supervised_validation=test_songs"
        )
    found = {triple[0].song for triple in valid}
    missing = [name for name in expected if name not in found]
    if missing:
        LOGGER.warning(
            "supervised_validation='musdb_valid': %d of musdb's %d validation tracks are not Training "
            "songs of %s, valid has %d songs; missing: %s",
            len(missing),
            len(expected),
            database,
            len(valid),
            "; ".join(missing),
        )
    return [triple for triple in training if triple[0].song not in found], valid


def _check_supervised_validation(supervised_validation, supervised_database):
    if supervised_validation not in SUPERVISED_VALIDATION_RULES:
        raise DatasetConfigError(
            f"supervised_validation={supervised_validation!r} is not supported; use one of "
            f"{', '.join(SUPERVISED_VALIDATION_RULES)}"
        )
    if supervised_validation == "musdb_valid" and supervised_database not in MUSDB_VALID_DATABASES:
        raise DatasetConfigError(
            f"supervised_validation='musdb_valid' (musdb's official validation tracks) needs "
            f"supervised_database {' or '.join(MUSDB_VALID_DATABASES)}, not "
            f"'{supervised_database}': set supervised_validation=test_songs for it"
        )
