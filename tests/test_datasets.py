"""Datasets: discovery of the five layouts, XML round trips, the paper's partition, derived
audio in the cache, dataset.pkl invalidation, custom datasets and every kind of bad input."""

import dataclasses
import logging
import os
import pickle
import re
import shutil
import stat
import sys
import zlib

import numpy as np
import pytest
import soundfile
import yaml

import Datasets
import Input
from conftest import write_wav
from Datasets import DatasetConfigError, LabelledSong
from Sample import Sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 8000
SMALL_PARTITION = {"supervised_valid_songs": 1}


# ---------------------------------------------------------------------------------------------
# Tiny databases in the public layouts


def noise(key, seconds=1.0, channels=2, sample_rate=SR):
    """Deterministic quiet noise [samples, channels], different for every ``key``."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return (0.1 * rng.standard_normal((int(round(seconds * sample_rate)), channels))).astype(np.float32)


def make_dsd100(root, dev=("002 - Beta - Second", "001 - Alpha - First"),
                test=("004 - Delta - Fourth", "003 - Gamma - Third")):
    for folder, songs in (("Dev", dev), ("Test", test)):
        for song in songs:
            sources = {stem: noise(song + stem) for stem in ("vocals", "bass", "drums", "other")}
            for stem, audio in sources.items():
                write_wav(root / "Sources" / folder / song / f"{stem}.wav", audio, SR)
            write_wav(root / "Mixtures" / folder / song / "mixture.wav", sum(sources.values()), SR)
    return str(root)


def make_musdb18hq(root, train=("B - Two", "A - One"), test=("C - Three",)):
    for folder, songs in (("train", train), ("test", test)):
        for song in songs:
            sources = {stem: noise(song + stem) for stem in ("vocals", "bass", "drums", "other")}
            for stem, audio in sources.items():
                write_wav(root / folder / song / f"{stem}.wav", audio, SR)
            write_wav(root / folder / song / "mixture.wav", sum(sources.values()), SR)
    return str(root)


MEDLEYDB_SONGS = {"Artist1_Sing": ["female singer", "electric bass", "male singer"],
                  "Artist2_Instrumental": ["drum set", "piano"],
                  "Artist3_Choir": ["choir", "acoustic guitar"]}


def make_medleydb(root, songs=None):
    for name, labels in (songs or MEDLEYDB_SONGS).items():
        folder = root / "Audio" / name
        stems = {}
        for index, label in enumerate(labels, start=1):
            filename = f"{name}_STEM_{index:02d}.wav"
            stems[f"S{index:02d}"] = {"filename": filename, "instrument": label, "component": ""}
            write_wav(folder / f"{name}_STEMS" / filename, noise(name + label), SR)
        write_wav(folder / f"{name}_MIX.wav", noise(name + "mix"), SR)
        (folder / f"{name}_METADATA.yaml").write_text(
            yaml.safe_dump({"artist": name.split("_")[0], "title": name.split("_")[1], "stems": stems}))
    return str(root)


def make_ccmixter(root, names=("Zed_-_Last_Song", "Abe_-_First_Song", "Max_-_Middle")):
    for name in names:
        instrumental, voice = noise(name + "inst"), noise(name + "voice")
        write_wav(root / name / "source-01.wav", instrumental, SR)
        write_wav(root / name / "source-02.wav", voice, SR)
        write_wav(root / name / "mix.wav", instrumental + voice, SR)
    return str(root)


def make_ikala(root, ids=("10171_chorus", "10161_verse", "10170_verse")):
    for clip in ids:
        write_wav(root / "Wavfile" / f"{clip}.wav", noise(clip), SR)
    return str(root)


MAKERS = {"DSD100": make_dsd100, "MUSDB18HQ": make_musdb18hq, "MedleyDB": make_medleydb,
          "CCMixter": make_ccmixter, "iKala": make_ikala}
PAPER_DATABASES = ("DSD100", "MedleyDB", "CCMixter", "iKala")


@pytest.fixture(scope="session")
def template_data(tmp_path_factory):
    """Tiny DSD100, MedleyDB, CCMixter and iKala folders, generated once and copied per test."""
    folder = tmp_path_factory.mktemp("template")
    for name in PAPER_DATABASES:
        MAKERS[name](folder / name)
    return folder


@pytest.fixture
def setup(tmp_path, template_data):
    """A private copy of the tiny databases and copies of the shipped placeholder XMLs."""
    shutil.copytree(template_data, tmp_path / "data")
    roots = {name: str(tmp_path / "data" / name) for name in PAPER_DATABASES}
    xmls = {}
    for name in PAPER_DATABASES:
        xmls[name] = str(tmp_path / "xml" / f"{name}.xml")
        os.makedirs(os.path.dirname(xmls[name]), exist_ok=True)
        shutil.copy(os.path.join(REPO, f"{name}.xml"), xmls[name])
    return {"roots": roots, "xmls": xmls, "cache": str(tmp_path / "cache"), "pkl": str(tmp_path / "dataset.pkl")}


def build(setup, **kwargs):
    arguments = dict(xml_paths=setup["xmls"], dataset_roots=setup["roots"], cache_dir=setup["cache"],
                     pkl_path=setup["pkl"], **SMALL_PARTITION)
    arguments.update(kwargs)
    return Datasets.get_dataset(**arguments)


def read(sample):
    audio, rate = soundfile.read(sample.path, dtype="float32", always_2d=True)
    assert rate == sample.sample_rate and audio.shape[1] == sample.channels
    return audio


def paired_triples(dataset):
    triples = [triple for key in ("train_sup", "valid", "test") for triple in dataset[key]]
    return triples + list(zip(*dataset["train_unsup"]))


def files_under(folder):
    return sorted((os.path.join(path, name), os.stat(os.path.join(path, name)).st_mtime_ns)
                  for path, _, names in os.walk(folder) for name in names)


# ---------------------------------------------------------------------------------------------
# XML files and discovery


@pytest.mark.parametrize("name", PAPER_DATABASES)
def test_shipped_xmls_have_an_obvious_placeholder_and_no_tracks(name):
    description = Datasets.read_database_xml(os.path.join(REPO, f"{name}.xml"))
    assert description.name == name
    assert description.folder == f"/path/to/{name}" and Datasets.is_placeholder_folder(description.folder)
    assert description.tracks == ()


def test_discover_dsd100_in_sorted_order_with_splits(tmp_path):
    description = Datasets.discover_database("DSD100", make_dsd100(tmp_path / "DSD100"))
    assert [(track.artist, track.title, track.split) for track in description.tracks] == [
        ("Alpha", "First", "Training"), ("Beta", "Second", "Training"),
        ("Gamma", "Third", "Test"), ("Delta", "Fourth", "Test")]
    first = description.tracks[0]
    assert [(item.name, item.relative_path) for item in first.instruments] == [
        ("Mix", "Mixtures/Dev/001 - Alpha - First/mixture.wav"),
        ("Voice", "Sources/Dev/001 - Alpha - First/vocals.wav"),
        ("Bass", "Sources/Dev/001 - Alpha - First/bass.wav"),
        ("Drums", "Sources/Dev/001 - Alpha - First/drums.wav"),
        ("Other", "Sources/Dev/001 - Alpha - First/other.wav")]
    assert {(item.sample_rate, item.channels, item.length, item.audio_format) for item in first.instruments} == {
        (SR, 2, 1.0, "wav")}


@pytest.mark.parametrize("name, expected", [
    ("MUSDB18HQ", [("A - One", "Training", ["Mix", "Voice", "Bass", "Drums", "Other"]),
                   ("B - Two", "Training", ["Mix", "Voice", "Bass", "Drums", "Other"]),
                   ("C - Three", "Test", ["Mix", "Voice", "Bass", "Drums", "Other"])]),
    ("MedleyDB", [("Artist1 - Sing", None, ["Mix", "Voice", "Bass", "Voice"]),
                  ("Artist2 - Instrumental", None, ["Mix", "Drums", "Piano"]),
                  ("Artist3 - Choir", None, ["Mix", "Voice", "Guitar"])]),
    ("CCMixter", [("Abe - First Song", None, ["Mix", "Instrumental", "Voice"]),
                  ("Max - Middle", None, ["Mix", "Instrumental", "Voice"]),
                  ("Zed - Last Song", None, ["Mix", "Instrumental", "Voice"])]),
    ("iKala", [("10161_verse", None, ["Mix"]), ("10170_verse", None, ["Mix"]), ("10171_chorus", None, ["Mix"])]),
])
def test_discover_other_layouts(tmp_path, name, expected):
    description = Datasets.discover_database(name, MAKERS[name](tmp_path / name))
    assert description.name == name and description.folder == str(tmp_path / name)
    assert [(track.song_name, track.split, [item.name for item in track.instruments])
            for track in description.tracks] == expected
    assert all(item.channels == 2 and item.sample_rate == SR
               for track in description.tracks for item in track.instruments)


def test_medleydb_stem_paths_and_multiple_voices(tmp_path):
    description = Datasets.discover_database("MedleyDB", make_medleydb(tmp_path / "MedleyDB"))
    choir = description.tracks[2]
    assert choir.instruments[1].relative_path == "Audio/Artist3_Choir/Artist3_Choir_STEMS/Artist3_Choir_STEM_01.wav"
    assert choir.instruments[1].multiple_voices and not choir.instruments[2].multiple_voices
    assert Datasets.MEDLEYDB_VOCAL_LABELS >= {"male singer", "female singer", "vocalists", "choir"}


def test_xml_round_trip(tmp_path):
    description = Datasets.discover_database("DSD100", make_dsd100(tmp_path / "DSD100"))
    xml_path = str(tmp_path / "out" / "DSD100.xml")
    Datasets.write_database_xml(xml_path, description)
    assert Datasets.read_database_xml(xml_path) == description
    Datasets.write_empty_xml(xml_path, "CCMixter")
    assert Datasets.read_database_xml(xml_path) == Datasets.DatabaseDescription("CCMixter", "/path/to/CCMixter", ())


def test_hand_written_xml_with_comments_and_few_tags(tmp_path):
    xml_path = tmp_path / "mine.xml"
    xml_path.write_text("<database><!-- mine --><databaseName>CCMixter</databaseName>"
                        "<databaseFolderPath>/data/cc</databaseFolderPath><trackList><track><title>T</title>"
                        "<instrumentList><instrument><relativeFilepath>a/mix.wav</relativeFilepath>"
                        "<instrumentName>Mix</instrumentName></instrument></instrumentList></track>"
                        "</trackList></database>")
    track = Datasets.read_database_xml(str(xml_path)).tracks[0]
    assert (track.song_name, track.split, track.instruments[0].name, track.instruments[0].sample_rate) == (
        "T", None, "Mix", 0)


def test_relative_database_folder_is_relative_to_the_xml(setup):
    xml_folder = os.path.dirname(setup["xmls"]["CCMixter"])
    relative = os.path.relpath(setup["roots"]["CCMixter"], xml_folder)
    Datasets.write_empty_xml(setup["xmls"]["CCMixter"], "CCMixter", folder=relative)
    database = Datasets.prepare_database("CCMixter", setup["xmls"]["CCMixter"], None, setup["cache"])
    assert database.folder == setup["roots"]["CCMixter"] and len(database.description.tracks) == 3
    assert Datasets.read_database_xml(setup["xmls"]["CCMixter"]).folder == relative


def test_empty_xml_is_filled_by_discovery_and_a_listed_one_is_used_as_it_is(setup):
    dataset = build(setup)
    description = Datasets.read_database_xml(setup["xmls"]["CCMixter"])
    assert description.folder == setup["roots"]["CCMixter"]
    assert [track.title for track in description.tracks] == ["First Song", "Middle", "Last Song"]
    assert len(dataset["test"]) == 4
    pruned = dataclasses.replace(description, tracks=description.tracks[:2])
    Datasets.write_database_xml(setup["xmls"]["CCMixter"], pruned)
    dataset = build(setup)
    assert Datasets.read_database_xml(setup["xmls"]["CCMixter"]) == pruned
    # Two songs: n = 2 // 3 = 0, so both go to test.
    assert [mix.song for mix, _, _ in dataset["test"] if mix.database == "CCMixter"] == [
        "Abe - First Song", "Max - Middle"]


# ---------------------------------------------------------------------------------------------
# The paper's partition


def fake_songs(database, count, split=None):
    def sample(role, index):
        return Sample(f"/fake/{database}/{index}/{role}.wav", 44100, 2, 180.0, database, f"{database} {index}")

    return [LabelledSong(tuple(sample(role, index) for role in Datasets.SOURCE_ORDER), split)
            for index in range(count)]


def test_partition_sizes_of_the_paper():
    songs = {"DSD100": fake_songs("DSD100", 50, "Training") + fake_songs("DSD100", 50, "Test"),
             "MedleyDB": fake_songs("MedleyDB", 122), "CCMixter": fake_songs("CCMixter", 50),
             "iKala": fake_songs("iKala", 252)}
    dataset = Datasets.partition_dataset(songs)  # the paper's defaults
    assert len(dataset["train_sup"]) == 50
    assert [len(samples) for samples in dataset["train_unsup"]] == [140, 140, 140]
    assert len(dataset["valid"]) == 165
    assert len(dataset["test"]) == 169
    assert Datasets.validate_dataset(dataset) == dataset


def test_partition_order_and_roles():
    songs = {"DSD100": fake_songs("DSD100", 2, "Training") + fake_songs("DSD100", 4, "Test"),
             "MedleyDB": fake_songs("MedleyDB", 7), "CCMixter": fake_songs("CCMixter", 3)}
    dataset = Datasets.partition_dataset(songs, unsupervised_databases=("MedleyDB", "CCMixter", "iKala"),
                                         supervised_valid_songs=2)
    names = {key: [f"{mix.database} {mix.path.split('/')[3]}" for mix, _, _ in dataset[key]]
             for key in ("train_sup", "valid", "test")}
    assert names["train_sup"] == ["DSD100 0", "DSD100 1"]
    # DSD100 Test songs have indices 0..3 within fake_songs' second list.
    assert names["valid"] == ["DSD100 0", "DSD100 1", "MedleyDB 2", "MedleyDB 3", "CCMixter 1"]
    assert names["test"] == ["DSD100 2", "DSD100 3", "MedleyDB 4", "MedleyDB 5", "MedleyDB 6", "CCMixter 2"]
    mixtures, accompaniments, voices = dataset["train_unsup"]
    assert [sample.path for sample in mixtures] == ["/fake/MedleyDB/0/mixture.wav", "/fake/MedleyDB/1/mixture.wav",
                                                    "/fake/CCMixter/0/mixture.wav"]
    assert all(sample.path.endswith("accompaniment.wav") for sample in accompaniments)
    assert all(sample.path.endswith("voice.wav") for sample in voices)


def test_supervised_song_without_split_is_an_error():
    with pytest.raises(DatasetConfigError, match="databaseSplit"):
        Datasets.partition_dataset({"DSD100": fake_songs("DSD100", 2)}, unsupervised_databases=())


@pytest.mark.parametrize("settings, message", [
    ({"supervised_database": "MedleyDB"}, "supervised_database"),
    ({"unsupervised_databases": ("MedleyDB", "Nope")}, "Unknown database 'Nope'"),
    ({"unsupervised_databases": ("DSD100",)}, "not the supervised database"),
    ({"supervised_valid_songs": -1}, "supervised_valid_songs"),
    ({"unsupervised_databases": "iKala"}, "must be a list"),
])
def test_bad_partition_settings(tmp_path, settings, message):
    with pytest.raises(DatasetConfigError, match=message):
        Datasets.get_dataset({}, {}, str(tmp_path / "cache"), str(tmp_path / "dataset.pkl"), **settings)


# ---------------------------------------------------------------------------------------------
# Derived audio in the cache


def test_derived_audio_adds_up_and_lives_in_the_cache(setup):
    dataset = build(setup)
    assert [len(dataset[key]) for key in ("train_sup", "valid", "test")] == [2, 4, 4]
    assert [len(samples) for samples in dataset["train_unsup"]] == [3, 3, 3]
    for mixture, accompaniment, voice in paired_triples(dataset):
        assert mixture.database and mixture.song == accompaniment.song == voice.song
        np.testing.assert_allclose(read(accompaniment) + read(voice), read(mixture), rtol=0, atol=1e-6)
    data_root = os.path.dirname(setup["roots"]["DSD100"])
    derived = [sample for triple in paired_triples(dataset) for sample in triple
               if not sample.path.startswith(data_root)]
    assert derived and all(sample.path.startswith(setup["cache"]) for sample in derived)


def test_derived_audio_refuses_a_source_with_non_finite_samples(setup):
    mixture = os.path.join(setup["roots"]["DSD100"], "Mixtures", "Dev", "001 - Alpha - First", "mixture.wav")
    audio, rate = soundfile.read(mixture, dtype="float32")
    audio[rate // 2, 1] = np.nan
    soundfile.write(mixture, audio, rate, subtype="FLOAT")
    with pytest.raises(Input.NonFiniteAudioError, match=re.escape(mixture) + r".*\(at 0\.500 s\) is nan"):
        build(setup)


def test_each_database_derives_the_right_signals(setup):
    dataset = build(setup)
    by_song = {triple[0].song: triple for triple in paired_triples(dataset)}
    # DSD100: original mixture and vocals, accompaniment = mixture - vocals in the cache.
    mixture, accompaniment, voice = by_song["Alpha - First"]
    assert mixture.path.endswith("Mixtures/Dev/001 - Alpha - First/mixture.wav")
    assert voice.path.endswith("Sources/Dev/001 - Alpha - First/vocals.wav")
    assert accompaniment.path.startswith(setup["cache"]) and accompaniment.channels == 2
    # MedleyDB: voice = sum of singer stems; a song without singers has a silent voice.
    _, _, voice = by_song["Artist1 - Sing"]
    np.testing.assert_allclose(read(voice), noise("Artist1_Singfemale singer") + noise("Artist1_Singmale singer"),
                               atol=1e-6)
    _, accompaniment, voice = by_song["Artist2 - Instrumental"]
    assert not read(voice).any() and read(accompaniment).any()
    # iKala: mono accompaniment = left, voice = right.
    mixture, accompaniment, voice = by_song["10161_verse"]
    stereo = noise("10161_verse")
    assert (mixture.channels, accompaniment.channels, voice.channels) == (1, 1, 1)
    np.testing.assert_array_equal(read(accompaniment)[:, 0], stereo[:, 0])
    np.testing.assert_array_equal(read(voice)[:, 0], stereo[:, 1])
    # CCMixter: the original files.
    assert [sample.path.rsplit("/", 1)[1] for sample in by_song["Abe - First Song"]] == [
        "mix.wav", "source-01.wav", "source-02.wav"]


def test_stems_of_different_lengths_warn_and_use_the_common_length(setup, caplog):
    vocals = os.path.join(setup["roots"]["DSD100"], "Sources", "Dev", "001 - Alpha - First", "vocals.wav")
    write_wav(vocals, noise("short", seconds=0.75), SR)
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        dataset = build(setup)
    warning = next(record.getMessage() for record in caplog.records if "different lengths" in record.getMessage())
    assert vocals in warning and "mixture.wav" in warning
    mixture, accompaniment, voice = next(triple for triple in dataset["train_sup"] if triple[0].song == "Alpha - First")
    assert mixture.duration == accompaniment.duration == voice.duration == 0.75
    assert mixture.path.startswith(setup["cache"])
    np.testing.assert_allclose(read(accompaniment) + read(voice), read(mixture), atol=1e-6)


def test_stems_of_different_sample_rates_are_resampled_to_the_mixture_rate(setup, caplog):
    vocals = os.path.join(setup["roots"]["DSD100"], "Sources", "Test", "003 - Gamma - Third", "vocals.wav")
    write_wav(vocals, noise("fast", sample_rate=11025), 11025)
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        dataset = build(setup)
    assert any("resampling to 8000 Hz" in record.getMessage() and vocals in record.getMessage()
               for record in caplog.records)
    triple = next(triple for triple in dataset["valid"] + dataset["test"] if triple[0].song == "Gamma - Third")
    assert {(sample.sample_rate, sample.duration) for sample in triple} == {(SR, 1.0)}
    np.testing.assert_allclose(read(triple[1]) + read(triple[2]), read(triple[0]), atol=1e-6)


def test_cached_audio_is_reused_until_an_input_changes(setup):
    database = Datasets.prepare_database("DSD100", setup["xmls"]["DSD100"], setup["roots"]["DSD100"], setup["cache"])
    first = Datasets.load_database_songs(database, setup["cache"])[0].triple
    written = os.stat(first[1].path).st_mtime_ns
    again = Datasets.load_database_songs(database, setup["cache"])[0].triple
    assert again == first and os.stat(again[1].path).st_mtime_ns == written
    status = os.stat(first[2].path)
    os.utime(first[2].path, ns=(status.st_atime_ns, status.st_mtime_ns + 5_000_000_000))
    changed = Datasets.load_database_songs(database, setup["cache"])[0].triple
    assert changed[1].path != first[1].path
    assert not os.path.exists(first[1].path)  # the stale accompaniment is removed
    np.testing.assert_allclose(read(changed[1]) + read(changed[2]), read(changed[0]), atol=1e-6)


def test_read_only_dataset_folder_is_never_written(setup):
    data_root = os.path.dirname(setup["roots"]["DSD100"])
    before = files_under(data_root)
    modes = {}
    for path, folders, names in os.walk(data_root):
        for entry in [path] + [os.path.join(path, name) for name in names]:
            modes[entry] = stat.S_IMODE(os.stat(entry).st_mode)
            os.chmod(entry, modes[entry] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        dataset = build(setup)
    finally:
        for entry, mode in modes.items():
            os.chmod(entry, mode)
    assert files_under(data_root) == before
    assert len(dataset["train_sup"]) == 2


# ---------------------------------------------------------------------------------------------
# dataset.pkl


def test_pkl_is_reused_and_rebuilt_when_the_xml_or_settings_change(setup, monkeypatch):
    first = build(setup)
    original_loader = Datasets.load_database_songs

    def must_not_load(*args, **kwargs):
        raise AssertionError("dataset.pkl should have been used")

    monkeypatch.setattr(Datasets, "load_database_songs", must_not_load)
    assert build(setup) == first
    description = Datasets.read_database_xml(setup["xmls"]["iKala"])
    Datasets.write_database_xml(setup["xmls"]["iKala"], dataclasses.replace(description, tracks=description.tracks[:2]))
    with pytest.raises(AssertionError, match="should have been used"):
        build(setup)
    monkeypatch.setattr(Datasets, "load_database_songs", original_loader)
    edited = build(setup)
    # iKala now has 2 songs: n = 0, so both go to test instead of one each to train_unsup, valid, test.
    assert len(edited["test"]) == len(first["test"]) + 1 and len(edited["valid"]) == len(first["valid"]) - 1
    assert len(edited["train_unsup"][0]) == len(first["train_unsup"][0]) - 1
    changed_settings = build(setup, supervised_valid_songs=2)
    assert len(changed_settings["valid"]) == len(edited["valid"]) + 1


def test_corrupt_pkl_is_rebuilt_with_a_warning(setup, caplog):
    first = build(setup)
    with open(setup["pkl"], "wb") as handle:
        handle.write(b"not a pickle")
    with caplog.at_level(logging.WARNING, logger="Datasets"):
        rebuilt = build(setup)
    assert rebuilt == first
    assert any(setup["pkl"] in record.getMessage() and "rebuilding" in record.getMessage()
               for record in caplog.records if record.levelno == logging.WARNING)
    with open(setup["pkl"], "rb") as handle:
        assert pickle.load(handle)["dataset"] == first


def test_pkl_listing_deleted_cache_files_is_rebuilt(setup):
    first = build(setup)
    shutil.rmtree(setup["cache"])
    assert build(setup) == first


# ---------------------------------------------------------------------------------------------
# Bad input


def test_placeholder_xml_explains_both_ways_to_configure_and_the_demo(setup):
    with pytest.raises(DatasetConfigError) as raised:
        build(setup, dataset_roots={})
    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    for part in (setup["xmls"]["DSD100"], "databaseFolderPath", "/path/to/DSD100",
                 "python Training.py with dataset_roots.DSD100=", "python Training.py with demo"):
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


def test_root_without_the_expected_layout(setup, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetConfigError, match="Found no CCMixter songs.*mix,source-01,source-02"):
        build(setup, dataset_roots=dict(setup["roots"], CCMixter=str(tmp_path / "empty")))


def test_file_listed_in_xml_that_is_missing(setup):
    build(setup)
    missing = os.path.join(setup["roots"]["CCMixter"], "Max_-_Middle", "source-02.wav")
    os.remove(missing)
    with pytest.raises(FileNotFoundError) as raised:
        build(setup)
    assert missing in str(raised.value) and setup["xmls"]["CCMixter"] in str(raised.value)


def test_malformed_xml_reports_its_line(setup):
    with open(setup["xmls"]["MedleyDB"], "w") as handle:
        handle.write("<database>\n  <databaseName>MedleyDB</databaseName>\n  <trackList>\n</database>\n")
    with pytest.raises(DatasetConfigError, match=r"MedleyDB\.xml is not well-formed XML \(line 4"):
        build(setup)


def test_unknown_instrument_name(setup):
    build(setup)
    with open(setup["xmls"]["CCMixter"]) as handle:
        text = handle.read()
    with open(setup["xmls"]["CCMixter"], "w") as handle:
        handle.write(text.replace("<instrumentName>Voice</instrumentName>",
                                  "<instrumentName>Vocals</instrumentName>", 1))
    with pytest.raises(DatasetConfigError) as raised:
        build(setup)
    message = str(raised.value)
    for part in (setup["xmls"]["CCMixter"], "Abe - First Song", "'Vocals'", "Mix, Voice, Instrumental"):
        assert part in message


def test_corrupt_audio_file_is_named_during_discovery(setup):
    broken = os.path.join(setup["roots"]["iKala"], "Wavfile", "10170_verse.wav")
    with open(broken, "wb") as handle:
        handle.write(b"RIFF garbage")
    with pytest.raises(ValueError, match="10170_verse.wav"):
        build(setup)


def test_ikala_clip_must_be_stereo(tmp_path):
    write_wav(tmp_path / "iKala" / "Wavfile" / "1.wav", noise("mono", channels=1), SR)
    with pytest.raises(DatasetConfigError, match=r"1\.wav has 1 channel"):
        Datasets.discover_database("iKala", str(tmp_path / "iKala"))


def test_xml_of_another_database(setup):
    shutil.copy(setup["xmls"]["iKala"], setup["xmls"]["CCMixter"])
    with pytest.raises(DatasetConfigError, match="databaseName 'iKala'"):
        build(setup)


# ---------------------------------------------------------------------------------------------
# MUSDB18-HQ, custom datasets, the table and the command line


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
        "    return {'train_sup': [], 'train_unsup': [['a.wav'], [], []], 'valid': [], 'test': []}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_data"
    sys.modules.pop("my_data", None)


def test_custom_dataset_function(setup, custom_module):
    dataset = build(setup, dataset_roots={}, custom_dataset=f"{custom_module}:good",
                    custom_dataset_kwargs={"copies": 2})
    assert len(dataset["train_sup"]) == 2 and isinstance(dataset["valid"][0], tuple)
    assert "mine" in Datasets.dataset_table(dataset)


@pytest.mark.parametrize("spec, message", [
    ("my_data:old_keys", r"exactly the keys train_sup, train_unsup, valid, test.*'train_test', 'train_valid'"),
    ("my_data:pairs", r"train_sup\[0\] must be a \(mixture, accompaniment, voice\) tuple"),
    ("my_data:paths", r"train_unsup\[0\]\[0\] is a str, expected a Sample"),
    ("my_data:missing", "has no function 'missing'"),
    ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("my_data.good", "must look like 'package.module:function'"),
])
def test_bad_custom_dataset(setup, custom_module, spec, message):
    with pytest.raises(DatasetConfigError, match=message):
        build(setup, custom_dataset=spec)


def test_dataset_table_counts_songs_and_hours():
    songs = {"DSD100": fake_songs("DSD100", 50, "Training") + fake_songs("DSD100", 50, "Test"),
             "MedleyDB": fake_songs("MedleyDB", 122), "CCMixter": fake_songs("CCMixter", 50),
             "iKala": fake_songs("iKala", 252)}
    lines = Datasets.dataset_table(Datasets.partition_dataset(songs)).splitlines()
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
    assert len(Datasets.read_database_xml(xml_path).tracks) == 4
    with pytest.raises(SystemExit) as raised:
        Datasets.main(["DSD100", str(tmp_path / "nowhere"), "--xml", xml_path])
    assert raised.value.code == 2 and "nowhere" in capsys.readouterr().err


def test_demo_generator_is_re_exported():
    assert callable(Datasets.generate_demo_database)
