"""The dataset dictionary (see Datasets.py): its checks, user functions that return one, and its table.

``{"train_sup", "train_unsup", "valid", "test"}``: the paired partitions are lists of
``(mixture, accompaniment, voice)`` ``Sample`` triples, ``train_unsup`` three independent lists
``[mixtures, accompaniments, voices]``.
"""

import importlib
from typing import Optional

from databases import PlainFolders
from databases.DatasetXML import DatasetConfigError
from databases.DerivedAudio import SOURCE_ORDER
from Sample import Sample

PARTITION_KEYS = ("train_sup", "train_unsup", "valid", "test")
PAIRED_PARTITIONS = ("train_sup", "valid", "test")


def validate_dataset(dataset: object, origin: str = "dataset") -> dict:
    """Check a dataset dict's keys, triple layout and types; return it with tuples as triples.

    Raises:
        DatasetConfigError: naming ``origin`` and the offending key or item.
    """
    if not isinstance(dataset, dict):
        raise DatasetConfigError(
            f"{origin} returned {type(dataset).__name__}, expected a dict with keys {', '.join(PARTITION_KEYS)}"
        )
    if set(dataset) != set(PARTITION_KEYS):
        missing, extra = sorted(set(PARTITION_KEYS) - set(dataset)), sorted(set(dataset) - set(PARTITION_KEYS))
        raise DatasetConfigError(
            f"{origin}: the dataset dict must have exactly the keys {', '.join(PARTITION_KEYS)} "
            f"(missing: {missing or 'none'}, unexpected: {extra or 'none'})"
        )
    validated = {
        key: [
            _validate_triple(item, f"{origin}: {key}[{index}]")
            for index, item in enumerate(_as_list(dataset[key], f"{origin}: {key}"))
        ]
        for key in PAIRED_PARTITIONS
    }
    unpaired = _as_list(dataset["train_unsup"], f"{origin}: train_unsup")
    if len(unpaired) != 3:
        raise DatasetConfigError(
            f"{origin}: train_unsup must be three lists [mixtures, accompaniments, voices], got {len(unpaired)} entries"
        )
    validated["train_unsup"] = [
        [
            _validate_sample(sample, f"{origin}: train_unsup[{role}][{index}]")
            for index, sample in enumerate(_as_list(samples, f"{origin}: train_unsup[{role}]"))
        ]
        for role, samples in enumerate(unpaired)
    ]
    return {key: validated[key] for key in PARTITION_KEYS}


def _as_list(value, where):
    if not isinstance(value, (list, tuple)):
        raise DatasetConfigError(f"{where} is a {type(value).__name__}, expected a list")
    return list(value)


def _validate_triple(item, where):
    if not isinstance(item, (list, tuple)) or len(item) != 3:
        raise DatasetConfigError(f"{where} must be a (mixture, accompaniment, voice) tuple of Samples, got {item!r}")
    return tuple(
        _validate_sample(sample, f"{where}[{index}] ({role})")
        for index, (sample, role) in enumerate(zip(item, SOURCE_ORDER))
    )


def _validate_sample(sample, where):
    if not isinstance(sample, Sample):
        raise DatasetConfigError(
            f"{where} is a {type(sample).__name__}, expected a Sample (use Sample.from_path(path, database, song))"
        )
    return sample


def load_custom_dataset(spec: str, kwargs: Optional[dict] = None) -> dict:
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
        raise DatasetConfigError(
            f"custom_dataset='{spec}': cannot import module '{module_name}' ({error}); "
            "make sure its folder is on PYTHONPATH or is the working directory"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DatasetConfigError(f"custom_dataset='{spec}': module '{module_name}' has no function '{function_name}'")
    return validate_dataset(function(**(kwargs or {})), origin=f"custom_dataset '{spec}'")


def check_unpaired_lists(dataset: dict) -> None:
    """Raise :class:`DatasetConfigError` unless every list of ``train_unsup`` holds a file: the
    semi-supervised phase needs unpaired mixtures and real excerpts of every source."""
    empty = [name for name, samples in zip(PlainFolders.UNPAIRED_LISTS, dataset["train_unsup"]) if not samples]
    if empty:
        raise DatasetConfigError(
            f"train_unsup has no {' and no '.join(empty)}: the semi-supervised phase needs unpaired mixtures, "
            "accompaniments and voices. Add folders to "
            + ", ".join(f"unpaired_folders.{name}" for name in empty)
            + " or an unsupervised database (partition_config.unsupervised_databases)"
        )


def dataset_table(dataset: dict) -> str:
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
    lines = [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _hours(samples):
    return sum(sample.duration for sample in samples) / 3600.0
