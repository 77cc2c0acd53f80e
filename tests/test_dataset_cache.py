"""DatasetCache.py: reading dataset.pkl cannot run code, and a file that is not one of our caches
is refused, never replaced (issue 20, item 1)."""

import json
import logging
import os
import pickle

import pytest

import Datasets
from databases import DatasetCache, DatasetXML
from Datasets import DatasetConfigError
from Sample import Sample

from fake_databases import build


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appearing proves that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def marker(tmp_path):
    """A live payload: a pickle that creates ``path`` when a plain unpickler reads it."""
    path = str(tmp_path / "code-ran")
    payload = pickle.dumps(_Payload(path), protocol=pickle.HIGHEST_PROTOCOL)
    probe = str(tmp_path / "probe")
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert os.path.exists(probe)  # the payload does run code under pickle.load
    return path, payload


def _write(path, content):
    with open(path, "wb") as handle:
        handle.write(content)
    return content


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _assert_nothing_was_done(setup):
    assert not os.path.exists(setup["cache"])
    assert all(DatasetXML.read_database_xml(xml).tracks == () for xml in setup["xmls"].values())


def test_a_crafted_pickle_does_not_run_and_is_left_in_place(setup, marker):
    path, payload = marker
    content = _write(setup["pkl"], pickle.dumps({"fingerprint": "x", "format_version": 1, "dataset": _Payload(path)}))
    with pytest.raises(DatasetConfigError) as raised:
        build(setup)
    assert not os.path.exists(path)
    assert _read(setup["pkl"]) == content
    message = str(raised.value)
    assert setup["pkl"] in message and "refers to io.open" in message and "delete it" in message
    _assert_nothing_was_done(setup)


def test_a_crafted_body_behind_our_header_and_fingerprint_does_not_run(setup, marker, caplog):
    path, payload = marker
    first = build(setup)
    header = DatasetCache.read_header(setup["pkl"])
    content = _write(setup["pkl"], DatasetCache.MAGIC + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(DatasetConfigError, match=r"refers to io\.open"):
        build(setup)
    assert not os.path.exists(path) and _read(setup["pkl"]) == content
    # With another fingerprint the body is never read: the file claims to be our cache and is rebuilt.
    _write(setup["pkl"], DatasetCache.MAGIC + b'{"format_version": 2, "fingerprint": "other"}\n' + payload)
    with caplog.at_level(logging.INFO, logger="databases.DatasetCache"):
        assert build(setup) == first
    assert not os.path.exists(path)
    assert any("rebuilding" in record.getMessage() for record in caplog.records)
    assert DatasetCache.read_header(setup["pkl"]) == header


@pytest.mark.parametrize(
    "content",
    [
        pickle.dumps({"weights": [1.0, 2.0]}),  # a harmless pickle of someone else
        pickle.dumps({"fingerprint": "x", "format_version": 1}),  # close, but not a dataset cache
        b"my notes\n",
        b"",
    ],
)
def test_a_foreign_file_is_refused_before_any_work_and_not_overwritten(setup, content):
    _write(setup["pkl"], content)
    with pytest.raises(DatasetConfigError) as raised:
        build(setup)
    message = str(raised.value)
    assert setup["pkl"] in message and "not a dataset cache" in message and "dataset_pkl" in message
    assert _read(setup["pkl"]) == content
    _assert_nothing_was_done(setup)
    with pytest.raises(DatasetConfigError, match="not a dataset cache"):
        DatasetCache.save(setup["pkl"], "fingerprint", {})
    assert _read(setup["pkl"]) == content


def test_a_folder_at_the_path_is_refused(setup):
    os.makedirs(setup["pkl"])
    with pytest.raises(DatasetConfigError, match="not a file"):
        build(setup)


def test_a_cache_of_the_previous_format_is_recognised_and_rebuilt(setup, caplog):
    first = build(setup)
    _write(
        setup["pkl"],
        pickle.dumps({"fingerprint": "old", "format_version": 1, "dataset": first}, protocol=pickle.HIGHEST_PROTOCOL),
    )
    with caplog.at_level(logging.INFO, logger="databases.DatasetCache"):
        assert build(setup) == first
    assert any("older version" in record.getMessage() for record in caplog.records)
    assert _read(setup["pkl"]).startswith(DatasetCache.MAGIC)


def test_our_cache_round_trips_with_its_header_first(setup, monkeypatch):
    first = build(setup)
    content = _read(setup["pkl"])
    assert content.startswith(DatasetCache.MAGIC)
    header = DatasetCache.read_header(setup["pkl"])
    assert header["format_version"] == DatasetCache.CACHE_FORMAT_VERSION and len(header["fingerprint"]) == 64
    monkeypatch.setattr(Datasets, "load_database_songs", lambda *args: pytest.fail("dataset.pkl was not used"))
    assert build(setup) == first
    assert _read(setup["pkl"]) == content


def test_a_sample_with_fields_of_the_wrong_type_is_rebuilt(setup, caplog):
    first = build(setup)
    mixture, accompaniment, voice = first["train_sup"][0]
    bad = Sample(mixture.path, str(mixture.sample_rate), mixture.channels, mixture.duration)
    damaged = dict(first, train_sup=[(bad, accompaniment, voice)] + first["train_sup"][1:])
    DatasetCache.save(setup["pkl"], DatasetCache.read_header(setup["pkl"])["fingerprint"], damaged)
    with caplog.at_level(logging.WARNING, logger="databases.DatasetCache"):
        assert build(setup) == first
    assert any(
        "sample_rate" in record.getMessage() and "rebuilding" in record.getMessage() for record in caplog.records
    )
