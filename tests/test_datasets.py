"""Datasets.py: the paper's partition, dataset.pkl, configuration errors, MUSDB18-HQ, custom datasets,
the table and the command line."""

import dataclasses
import logging
import os
import shutil
import sys

import pytest

import Datasets
from databases import DatasetCache, DatasetDicts, DatasetXML, DerivedAudio
from databases.DatasetXML import LabelledSong
from Datasets import DatasetConfigError
from Sample import Sample

from conftest import write_wav
from fake_databases import SR, build, make_dsd100, make_musdb18hq, noise


def test_relative_database_folder_is_relative_to_the_xml(setup):
    xml_folder = os.path.dirname(setup["xmls"]["CCMixter"])
    relative = os.path.relpath(setup["roots"]["CCMixter"], xml_folder)
    DatasetXML.write_empty_xml(setup["xmls"]["CCMixter"], "CCMixter", folder=relative)
    database = Datasets.prepare_database("CCMixter", setup["xmls"]["CCMixter"], None, setup["cache"])
    assert database.folder == setup["roots"]["CCMixter"] and len(database.description.tracks) == 3
    assert DatasetXML.read_database_xml(setup["xmls"]["CCMixter"]).folder == relative


def test_empty_xml_is_filled_by_discovery_and_a_listed_one_is_used_as_it_is(setup):
    dataset = build(setup)
    description = DatasetXML.read_database_xml(setup["xmls"]["CCMixter"])
    assert description.folder == setup["roots"]["CCMixter"]
    assert [track.title for track in description.tracks] == ["First Song", "Middle", "Last Song"]
    assert len(dataset["test"]) == 4
    pruned = dataclasses.replace(description, tracks=description.tracks[:2])
    DatasetXML.write_database_xml(setup["xmls"]["CCMixter"], pruned)
    dataset = build(setup)
    assert DatasetXML.read_database_xml(setup["xmls"]["CCMixter"]) == pruned
    # Two songs: n = 2 // 3 = 0, so both go to test.
    assert [mix.song for mix, _, _ in dataset["test"] if mix.database == "CCMixter"] == [
        "Abe - First Song",
        "Max - Middle",
    ]


def fake_songs(database, count, split=None):
    def sample(role, index):
        return Sample(f"/fake/{database}/{index}/{role}.wav", 44100, 2, 180.0, database, f"{database} {index}")

    return [
        LabelledSong(tuple(sample(role, index) for role in DerivedAudio.SOURCE_ORDER), split) for index in range(count)
    ]


def test_partition_sizes_of_the_paper():
    songs = {
        "DSD100": fake_songs("DSD100", 50, "Training") + fake_songs("DSD100", 50, "Test"),
        "MedleyDB": fake_songs("MedleyDB", 122),
        "CCMixter": fake_songs("CCMixter", 50),
        "iKala": fake_songs("iKala", 252),
    }
    dataset = Datasets.partition_dataset(songs)  # the paper's defaults
    assert len(dataset["train_sup"]) == 50
    assert [len(samples) for samples in dataset["train_unsup"]] == [140, 140, 140]
    assert len(dataset["valid"]) == 165
    assert len(dataset["test"]) == 169
    assert Datasets.validate_dataset(dataset) == dataset


def test_partition_order_and_roles():
    songs = {
        "DSD100": fake_songs("DSD100", 2, "Training") + fake_songs("DSD100", 4, "Test"),
        "MedleyDB": fake_songs("MedleyDB", 7),
        "CCMixter": fake_songs("CCMixter", 3),
    }
    dataset = Datasets.partition_dataset(
        songs, unsupervised_databases=("MedleyDB", "CCMixter", "iKala"), supervised_valid_songs=2
    )
    names = {
        key: [f"{mix.database} {mix.path.split('/')[3]}" for mix, _, _ in dataset[key]]
        for key in ("train_sup", "valid", "test")
    }
    assert names["train_sup"] == ["DSD100 0", "DSD100 1"]
    # DSD100 Test songs have indices 0..3 within fake_songs' second list.
    assert names["valid"] == ["DSD100 0", "DSD100 1", "MedleyDB 2", "MedleyDB 3", "CCMixter 1"]
    assert names["test"] == ["DSD100 2", "DSD100 3", "MedleyDB 4", "MedleyDB 5", "MedleyDB 6", "CCMixter 2"]
    mixtures, accompaniments, voices = dataset["train_unsup"]
    assert [sample.path for sample in mixtures] == [
        "/fake/MedleyDB/0/mixture.wav",
        "/fake/MedleyDB/1/mixture.wav",
        "/fake/CCMixter/0/mixture.wav",
    ]
    assert all(sample.path.endswith("accompaniment.wav") for sample in accompaniments)
    assert all(sample.path.endswith("voice.wav") for sample in voices)


def test_supervised_song_without_split_is_an_error():
    with pytest.raises(DatasetConfigError, match="databaseSplit"):
        Datasets.partition_dataset({"DSD100": fake_songs("DSD100", 2)}, unsupervised_databases=())


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"supervised_database": "MedleyDB"}, "supervised_database"),
        ({"unsupervised_databases": ("MedleyDB", "Nope")}, "Unknown database 'Nope'"),
        ({"unsupervised_databases": ("DSD100",)}, "not the supervised database"),
        ({"supervised_valid_songs": -1}, "supervised_valid_songs"),
        ({"unsupervised_databases": "iKala"}, "must be a list"),
    ],
)
def test_bad_partition_settings(tmp_path, settings, message):
    with pytest.raises(DatasetConfigError, match=message):
        Datasets.get_dataset({}, {}, str(tmp_path / "cache"), str(tmp_path / "dataset.pkl"), **settings)


def test_pkl_is_reused_and_rebuilt_when_the_xml_or_settings_change(setup, monkeypatch):
    first = build(setup)
    original_loader = DerivedAudio.load_database_songs

    def must_not_load(*args, **kwargs):
        raise AssertionError("dataset.pkl should have been used")

    monkeypatch.setattr(Datasets, "load_database_songs", must_not_load)
    assert build(setup) == first
    description = DatasetXML.read_database_xml(setup["xmls"]["iKala"])
    DatasetXML.write_database_xml(
        setup["xmls"]["iKala"], dataclasses.replace(description, tracks=description.tracks[:2])
    )
    with pytest.raises(AssertionError, match="should have been used"):
        build(setup)
    monkeypatch.setattr(Datasets, "load_database_songs", original_loader)
    edited = build(setup)
    # iKala now has 2 songs: n = 0, so both go to test instead of one each to train_unsup, valid, test.
    assert len(edited["test"]) == len(first["test"]) + 1 and len(edited["valid"]) == len(first["valid"]) - 1
    assert len(edited["train_unsup"][0]) == len(first["train_unsup"][0]) - 1
    changed_settings = build(setup, supervised_valid_songs=2)
    assert len(changed_settings["valid"]) == len(edited["valid"]) + 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda content: content[: len(content) // 2],  # our header, then a truncated body
        lambda content: DatasetCache.MAGIC + b"{not json\n" + content.split(b"\n", 2)[2],  # a damaged header
    ],
)
def test_corrupt_pkl_is_rebuilt_with_a_warning(setup, caplog, damage):
    # A damaged cache of ours (its first line says so) is rebuilt; any other file is refused
    # (tests/test_dataset_cache.py).
    first = build(setup)
    with open(setup["pkl"], "rb") as handle:
        content = handle.read()
    with open(setup["pkl"], "wb") as handle:
        handle.write(damage(content))
    with caplog.at_level(logging.WARNING, logger="databases.DatasetCache"):
        rebuilt = build(setup)
    assert rebuilt == first
    assert any(
        setup["pkl"] in record.getMessage() and "rebuilding" in record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING
    )
    header = DatasetCache.read_header(setup["pkl"])
    assert DatasetCache.load(setup["pkl"], header["fingerprint"], Datasets.validate_dataset) == first


def test_pkl_listing_deleted_cache_files_is_rebuilt(setup):
    first = build(setup)
    shutil.rmtree(setup["cache"])
    assert build(setup) == first


def test_placeholder_xml_explains_both_ways_to_configure_and_the_demo(setup):
    with pytest.raises(DatasetConfigError) as raised:
        build(setup, dataset_roots={})
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    for part in (
        setup["xmls"]["DSD100"],
        "databaseFolderPath",
        "/path/to/DSD100",
        "python Training.py with dataset_roots.DSD100=",
        "python Training.py with demo",
    ):
        assert part in message


def test_unconfigured_optional_database_is_skipped(setup):
    roots = dict(setup["roots"], iKala=None)
    dataset = build(setup, dataset_roots=roots, optional_databases=("iKala",))
    assert not any(mix.database == "iKala" for mix, _, _ in dataset["valid"] + dataset["test"])
    with pytest.raises(DatasetConfigError, match="iKala"):
        build(setup, dataset_roots=roots)


def test_root_that_does_not_exist(setup, tmp_path):
    roots = dict(setup["roots"], MedleyDB=str(tmp_path / "missing"))
    with pytest.raises(DatasetConfigError, match=r"missing.*dataset_roots\.MedleyDB.*does not exist"):
        build(setup, dataset_roots=roots)


def test_file_listed_in_xml_that_is_missing(setup):
    build(setup)
    missing = os.path.join(setup["roots"]["CCMixter"], "Max_-_Middle", "source-02.wav")
    os.remove(missing)
    with pytest.raises(FileNotFoundError) as raised:
        build(setup)
    assert missing in str(raised.value) and setup["xmls"]["CCMixter"] in str(raised.value)


def test_musdb18hq_as_supervised_database_without_xml(setup, tmp_path):
    roots = dict(setup["roots"], MUSDB18HQ=make_musdb18hq(tmp_path / "MUSDB18HQ"))
    dataset = build(setup, dataset_roots=roots, supervised_database="MUSDB18HQ", supervised_valid_songs=0)
    assert [mix.song for mix, _, _ in dataset["train_sup"]] == ["A - One", "B - Two"]
    assert dataset["test"][0][0].song == "C - Three"
    assert os.path.isfile(os.path.join(setup["cache"], "MUSDB18HQ.xml"))


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    audio = write_wav(tmp_path / "custom" / "a.wav", noise("custom"), SR)
    (tmp_path / "my_data.py").write_text(
        "from Sample import Sample\n"
        f"S = Sample.from_path({audio!r}, 'mine', 'song')\n"
        "def good(copies=1):\n"
        "    return {'train_sup': [(S, S, S)] * copies, 'train_unsup': [[S], [S], [S]], 'valid': [[S, S, S]],\n"
        "            'test': []}\n"
        "def old_keys():\n"
        "    return {'train_sup': [], 'train_unsup': [[], [], []], 'train_valid': [], 'train_test': []}\n"
        "def pairs():\n"
        "    return {'train_sup': [(S, S)], 'train_unsup': [[], [], []], 'valid': [], 'test': []}\n"
        "def paths():\n"
        "    return {'train_sup': [], 'train_unsup': [['a.wav'], [], []], 'valid': [], 'test': []}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_data"
    sys.modules.pop("my_data", None)


def test_custom_dataset_function(setup, custom_module):
    dataset = build(
        setup, dataset_roots={}, custom_dataset=f"{custom_module}:good", custom_dataset_kwargs={"copies": 2}
    )
    assert len(dataset["train_sup"]) == 2 and isinstance(dataset["valid"][0], tuple)
    assert "mine" in DatasetDicts.dataset_table(dataset)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("my_data:old_keys", r"exactly the keys train_sup, train_unsup, valid, test.*'train_test', 'train_valid'"),
        ("my_data:pairs", r"train_sup\[0\] must be a \(mixture, accompaniment, voice\) tuple"),
        ("my_data:paths", r"train_unsup\[0\]\[0\] \(mixtures\) is a str, expected a Sample"),
        ("my_data:missing", "has no function 'missing'"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("my_data.good", "must look like 'package.module:function'"),
    ],
)
def test_bad_custom_dataset(setup, custom_module, spec, message):
    with pytest.raises(DatasetConfigError, match=message):
        build(setup, custom_dataset=spec)


def test_dataset_table_counts_songs_and_hours():
    songs = {
        "DSD100": fake_songs("DSD100", 50, "Training") + fake_songs("DSD100", 50, "Test"),
        "MedleyDB": fake_songs("MedleyDB", 122),
        "CCMixter": fake_songs("CCMixter", 50),
        "iKala": fake_songs("iKala", 252),
    }
    lines = DatasetDicts.dataset_table(Datasets.partition_dataset(songs)).splitlines()
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines[2:]}
    assert rows[("train_sup", "DSD100")] == ["50", "2.50"]
    assert rows[("train_unsup/voice", "iKala")] == ["84", "4.20"]
    assert rows[("valid", "DSD100")] == ["25", "1.25"]
    assert rows[("test", "all")] == ["169", "8.45"]
    assert lines[0].split() == ["Partition", "Database", "Songs", "Hours"]


def test_command_line_writes_the_xml_and_prints_a_summary(tmp_path, capsys):
    root = make_dsd100(tmp_path / "DSD100")
    xml_path = str(tmp_path / "DSD100.xml")
    Datasets.main(["DSD100", root, "--xml", xml_path])
    output = capsys.readouterr().out.strip().splitlines()
    assert output == [f"DSD100: 4 tracks (2 Training, 2 Test), 0.00 hours, sample rates {SR} Hz -> {xml_path}"]
    assert len(DatasetXML.read_database_xml(xml_path).tracks) == 4
    with pytest.raises(SystemExit) as raised:
        Datasets.main(["DSD100", str(tmp_path / "nowhere"), "--xml", xml_path])
    assert raised.value.code == 2 and "nowhere" in capsys.readouterr().err
