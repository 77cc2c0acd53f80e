"""dataset.pkl: the built dataset dictionary, cached in a file that cannot run code when it is read.

Layout: the line :data:`MAGIC`, a JSON header line ``{"format_version": N, "fingerprint": "<sha256
hex>"}``, then a pickle of the dataset dictionary. A reader checks the first line and the header
before anything else; only a cache of the current format with the expected fingerprint has its
body read, with an unpickler that knows plain data (dict, list, tuple, str, numbers) and
:class:`Sample` (the only class a dataset holds) and refuses every other global, so no function
named in the file is ever called. Every Sample's fields are then type-checked.

What is found at the configured path decides what may happen to it:

- nothing: the dataset is built and written there (atomically);
- one of our caches (first line :data:`MAGIC`): used while it is current; rebuilt when its
  header, fingerprint or listed files say it is stale, or (with a warning) when it is damaged;
- a cache of format 1 (a bare pickle of ``{"fingerprint", "format_version", "dataset"}``,
  recognised with the same restricted unpickler): rebuilt in the current format;
- anything else, or a file that names any other global: refused with a
  :class:`DatasetConfigError` naming the path, and never read further or replaced.
"""

import json
import logging
import os
import pickle
from typing import Callable, Optional

from common import Utils
from databases.DatasetXML import DatasetConfigError
from Sample import Sample

LOGGER = logging.getLogger(__name__)

MAGIC = b"# dataset cache of Datasets.py: a JSON header line, then a pickle of Samples\n"
# Bump when the stored structure changes; a cache of another version is rebuilt
# (3: items hold the mixture and the configured sources, train_unsup one list per source).
CACHE_FORMAT_VERSION = 3
LEGACY_KEYS = {"fingerprint", "format_version", "dataset"}
MAX_HEADER_BYTES = 4096
# A format-1 cache of every database of the paper is well under 1 MB; larger pickles are not ours.
MAX_LEGACY_BYTES = 64 * 1024**2
ALLOWED_GLOBALS = {("Sample", "Sample"): Sample}


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The file names a global that no dataset cache holds (``module.name`` in the message)."""


class _DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data and Samples, and nothing that could run code."""

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _ForbiddenGlobal(f"persistent id {pid!r}")


def check_replaceable(path: str) -> None:
    """Raise unless the file at ``path`` is missing or one of our caches (current or older).

    Call it before any work, so that a foreign file at the configured path stops the run at
    once instead of after the dataset was built.

    Raises:
        DatasetConfigError: ``path`` holds a foreign file, a crafted pickle or a folder.
    """
    _identify(path)


def load(path: str, fingerprint: str, validate: Callable[[object], dict]) -> Optional[dict]:
    """The dataset stored at ``path`` if it is a current cache whose files all exist, else None.

    Args:
        path: the dataset cache (``dataset_pkl``).
        fingerprint: sha256 hex digest of everything the dataset is built from.
        validate: checks the stored dictionary's structure and returns it (for example with
            tuples as triples); any exception it raises means "rebuild".

    Returns:
        The dataset dictionary, or None when it must be (re)built: no file, a stale or damaged
        cache (logged), or a listed audio file that no longer exists.

    Raises:
        DatasetConfigError: the file is not one of our caches (see the module docstring).
    """
    kind, header = _identify(path)
    if kind == "missing":
        return None
    if kind == "legacy":
        LOGGER.info("%s was written by an older version of this project; rebuilding it", path)
        return None
    if header is None:
        LOGGER.warning("Cannot read the header of %s (damaged); rebuilding the dataset structure", path)
        return None
    if header["format_version"] != CACHE_FORMAT_VERSION or header["fingerprint"] != fingerprint:
        LOGGER.info("%s was built from other XMLs, folders, files or settings; rebuilding it", path)
        return None
    try:
        with open(path, "rb") as handle:
            handle.readline(len(MAGIC))
            handle.readline(MAX_HEADER_BYTES)
            dataset = validate(_DataOnlyUnpickler(handle).load())
        _check_sample_fields(dataset)
    except _ForbiddenGlobal as error:
        raise _crafted_file_error(os.path.abspath(path), error) from None
    except Exception as error:  # a damaged body of our own cache (truncated, edited): rebuild
        LOGGER.warning("Cannot read %s (%s: %s); rebuilding the dataset structure", path, type(error).__name__, error)
        return None
    missing = [sample.path for sample in _samples(dataset) if not os.path.isfile(sample.path)]
    if missing:
        LOGGER.warning(
            "%s lists %d file(s) that no longer exist (e.g. %s); rebuilding it", path, len(missing), missing[0]
        )
        return None
    LOGGER.info("Loaded the dataset structure from %s", path)
    return dataset


def save(path: str, fingerprint: str, dataset: dict) -> None:
    """Write ``dataset`` to ``path`` atomically, unless a file that is not one of our caches is there.

    Raises:
        DatasetConfigError: as :func:`check_replaceable`.
    """
    check_replaceable(path)
    header = json.dumps({"format_version": CACHE_FORMAT_VERSION, "fingerprint": fingerprint}).encode("ascii")
    with Utils.atomic_write(path, "wb") as handle:
        handle.write(MAGIC + header + b"\n")
        pickle.dump(dataset, handle, protocol=pickle.HIGHEST_PROTOCOL)


def read_header(path: str) -> Optional[dict]:
    """``{"format_version", "fingerprint"}`` of our cache at ``path``; None if it has none (missing,
    older format or damaged header).

    Raises:
        DatasetConfigError: the file is not one of our caches.
    """
    return _identify(path)[1]


def _identify(path):
    """``(kind, header)``: kind "missing", "ours" (header None if damaged) or "legacy".

    Raises:
        DatasetConfigError: anything else is at ``path``.
    """
    if not os.path.lexists(path):
        return "missing", None
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise DatasetConfigError(
            f"{path} (the dataset_pkl setting) exists but is not a file: set dataset_pkl to "
            "a file path, e.g. dataset.pkl"
        )
    try:
        with open(path, "rb") as handle:
            first = handle.readline(len(MAGIC))
            if first == MAGIC:
                return "ours", _parse_header(handle.readline(MAX_HEADER_BYTES))
            if first.startswith(b"\x80") and os.fstat(handle.fileno()).st_size <= MAX_LEGACY_BYTES:
                handle.seek(0)
                if _is_legacy_cache(handle):
                    return "legacy", None
    except OSError as error:
        raise DatasetConfigError(
            f"Cannot read {path} (the dataset_pkl setting): {error}. Fix its permissions or "
            "set dataset_pkl to another file"
        ) from error
    except _ForbiddenGlobal as error:
        raise _crafted_file_error(path, error) from None
    raise DatasetConfigError(
        f"{path} (the dataset_pkl setting) is not a dataset cache written by this project, so it is neither read "
        "nor replaced. Move or delete it if you do not need it, or keep it and set dataset_pkl to another file "
        "(e.g. `python Training.py with dataset_pkl=cache/dataset.pkl`)"
    )


def _parse_header(line):
    try:
        header = json.loads(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    valid = (
        isinstance(header, dict)
        and set(header) == {"format_version", "fingerprint"}
        and isinstance(header["format_version"], int)
        and isinstance(header["fingerprint"], str)
    )
    return header if valid else None


def _is_legacy_cache(handle):
    """True for a format-1 cache: a bare pickle of a dict with exactly :data:`LEGACY_KEYS`.

    Raises:
        _ForbiddenGlobal: the pickle names a global other than Sample (nothing was called).
    """
    try:
        stored = _DataOnlyUnpickler(handle).load()
    except _ForbiddenGlobal:
        raise
    except Exception:  # not a pickle we can read: a foreign file
        return False
    return isinstance(stored, dict) and set(stored) == LEGACY_KEYS


def _crafted_file_error(path, error):
    return DatasetConfigError(
        f"{path} (the dataset_pkl setting) refers to {error}, which no dataset cache holds, so it was not written "
        "by this project (a pickle that names other code can run it when unpickled; nothing in this one was run). "
        "It is left as it is: move or delete it, or set dataset_pkl to another file"
    )


def _check_sample_fields(dataset):
    """Raise TypeError unless every Sample field has the type Sample declares (str, int, float)."""
    for sample in _samples(dataset):
        for name, expected in (
            ("path", str),
            ("sample_rate", int),
            ("channels", int),
            ("duration", float),
            ("database", str),
            ("song", str),
        ):
            value = getattr(sample, name)
            if type(value) is not expected:
                raise TypeError(f"a Sample's {name} is {value!r}, expected a {expected.__name__}")


def _samples(dataset):
    for key in ("train_sup", "valid", "test"):
        for triple in dataset[key]:
            yield from triple
    for samples in dataset["train_unsup"]:
        yield from samples
