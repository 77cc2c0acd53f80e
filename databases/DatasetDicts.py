"""The dataset dictionary (see Datasets.py): its checks, user functions that return one, and its table.

``{"train_sup", "train_unsup", "valid", "test"}``: the paired partitions are lists of items
``(mixture, *sources)`` of ``Sample`` in the order of the model's sources
(``model_config.sources``; by default ``(mixture, accompaniment, voice)`` triples), and
``train_unsup`` is independent lists ``[mixtures, *one list per source]``.

At the boundary (a custom dataset function) items may also be given by name: a paired item as
a dict ``{"mixture": Sample, "<source>": Sample, ...}`` with every source, ``train_unsup`` as a
dict ``{"mixtures": [...], "<source>": [...]}`` (a missing list is empty); they are turned into
the tuples and lists above, so the rest of the project sees one form.
"""

import importlib
from typing import Optional, Sequence, Tuple

from databases.DatasetXML import DatasetConfigError
from databases.Sources import DEFAULT_SOURCES
from Sample import Sample

PARTITION_KEYS = ("train_sup", "train_unsup", "valid", "test")
PAIRED_PARTITIONS = ("train_sup", "valid", "test")


def validate_dataset(dataset: object, origin: str = "dataset", sources: Sequence[str] = DEFAULT_SOURCES) -> dict:
    """Check a dataset dict's keys, item layout and types; return it with items as tuples.

    Args:
        dataset: the dict of the module docstring (items as tuples or by name).
        origin: names the dict in messages.
        sources: the model's sources, in order (``model_config.sources``).

    Raises:
        DatasetConfigError: naming ``origin`` and the offending key or item.
    """
    sources = tuple(sources)
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
            _validate_item(item, f"{origin}: {key}[{index}]", sources)
            for index, item in enumerate(_as_list(dataset[key], f"{origin}: {key}"))
        ]
        for key in PAIRED_PARTITIONS
    }
    roles = unpaired_roles(sources)
    unpaired = dataset["train_unsup"]
    if isinstance(unpaired, dict):
        unknown = sorted(set(unpaired) - set(roles))
        if unknown:
            raise DatasetConfigError(
                f"{origin}: train_unsup has the unknown list(s) {', '.join(map(str, unknown))}; "
                f"its lists are {', '.join(roles)} (model_config.sources = {list(sources)})"
            )
        unpaired = [unpaired.get(role, []) for role in roles]
    unpaired = _as_list(unpaired, f"{origin}: train_unsup")
    if len(unpaired) != len(roles):
        raise DatasetConfigError(
            f"{origin}: train_unsup must be {len(roles)} lists [{', '.join(roles)}] "
            f"(model_config.sources = {list(sources)}), got {len(unpaired)} entries"
        )
    validated["train_unsup"] = [
        [
            _validate_sample(sample, f"{origin}: train_unsup[{number}][{index}] ({role})")
            for index, sample in enumerate(_as_list(samples, f"{origin}: train_unsup[{number}] ({role})"))
        ]
        for number, (role, samples) in enumerate(zip(roles, unpaired))
    ]
    return {key: validated[key] for key in PARTITION_KEYS}


def unpaired_roles(sources: Sequence[str]) -> Tuple[str, ...]:
    """The names of ``train_unsup``'s lists: ``("mixtures", *sources)``."""
    return ("mixtures",) + tuple(sources)


def _as_list(value, where):
    if not isinstance(value, (list, tuple)):
        raise DatasetConfigError(f"{where} is a {type(value).__name__}, expected a list")
    return list(value)


def _validate_item(item, where, sources):
    roles = ("mixture",) + sources
    if isinstance(item, dict):
        if set(item) != set(roles):
            raise DatasetConfigError(
                f"{where} must name exactly {', '.join(roles)} (model_config.sources = {list(sources)}), "
                f"got {', '.join(map(str, item))}"
            )
        item = tuple(item[role] for role in roles)
    if not isinstance(item, (list, tuple)) or len(item) != len(roles):
        raise DatasetConfigError(
            f"{where} must be a ({', '.join(roles)}) tuple of Samples (model_config.sources = {list(sources)}), "
            f"got {item!r}"
        )
    return tuple(
        _validate_sample(sample, f"{where}[{index}] ({role})") for index, (sample, role) in enumerate(zip(item, roles))
    )


def _validate_sample(sample, where):
    if not isinstance(sample, Sample):
        raise DatasetConfigError(
            f"{where} is a {type(sample).__name__}, expected a Sample (use Sample.from_path(path, database, song))"
        )
    return sample


def load_custom_dataset(spec: str, kwargs: Optional[dict] = None, sources: Sequence[str] = DEFAULT_SOURCES) -> dict:
    """Call the user function named ``"package.module:function"`` and validate its dataset dict.

    Args:
        spec: import path of a function; it is called as ``function(**kwargs)`` and must return
            the dict described in the module docstring.
        kwargs: keyword arguments for the function (none by default).
        sources: the model's sources, in order (``model_config.sources``).
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
    return validate_dataset(function(**(kwargs or {})), origin=f"custom_dataset '{spec}'", sources=sources)


def check_unpaired_lists(dataset: dict, sources: Sequence[str] = DEFAULT_SOURCES) -> None:
    """Raise :class:`DatasetConfigError` unless every list of ``train_unsup`` holds a file: the
    semi-supervised phase needs unpaired mixtures and real excerpts of every source."""
    empty = [name for name, samples in zip(unpaired_roles(sources), dataset["train_unsup"]) if not samples]
    if empty:
        raise DatasetConfigError(
            f"train_unsup has no {' and no '.join(empty)}: the semi-supervised phase needs unpaired mixtures "
            f"and excerpts of every source ({', '.join(sources)}). Add folders to "
            + ", ".join(f"unpaired_folders.{name}" for name in empty)
            + " or an unsupervised database that gives them (partition_config.unsupervised_databases, "
            "databases/Sources.py)"
        )


def dataset_table(dataset: dict, sources: Sequence[str] = DEFAULT_SOURCES) -> str:
    """A text table: per partition and database, number of songs (or items) and hours of audio.

    Paired partitions count songs and their mixtures' durations; ``train_unsup`` has one block
    per unpaired list (mixture, then each of ``sources``), so a database that gives some
    sources only (databases/Sources.py) shows where it is used.
    """
    roles = ("mixture",) + tuple(sources)
    groups = [(key, [item[0] for item in dataset[key]]) for key in PAIRED_PARTITIONS[:1]]
    groups += [(f"train_unsup/{role}", list(samples)) for role, samples in zip(roles, dataset["train_unsup"])]
    groups += [(key, [item[0] for item in dataset[key]]) for key in PAIRED_PARTITIONS[1:]]
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
