"""Sources by name: where each database's sources come from (databases/Sources.py), the partition
for four sources, custom datasets by name, and the MedleyDB label mapping file."""

import numpy as np
import pytest

from common.Config import ConfigError, ModelConfig
from databases import DatasetDicts, Sources
from Datasets import DatasetConfigError

from fake_databases import SR, build, read

FOUR = ("drums", "bass", "other", "voice")


def find(items, ending):
    """The item whose song name ends with ``ending``."""
    (item,) = [item for item in items if item[0].song.endswith(ending)]
    return item


def test_four_sources_come_from_the_stems_and_ccmixter_and_ikala_give_only_mixtures_and_voices(setup):
    dataset = build(setup, sources=FOUR)
    for key in ("train_sup", "valid", "test"):
        assert dataset[key] and all(len(item) == 5 for item in dataset[key])
    # DSD100: each stem is its own file; the sources add up to the mixture.
    song = find(dataset["train_sup"], "First")
    assert [sample.path.rsplit("/", 1)[1] for sample in song[1:]] == [
        "drums.wav",
        "bass.wav",
        "other.wav",
        "vocals.wav",
    ]
    np.testing.assert_allclose(sum(read(sample) for sample in song[1:]), read(song[0]), atol=1e-5)
    # MedleyDB: drum set -> drums, electric bass -> bass, piano / guitar -> other, singers -> voice.
    medleydb = [item for key in ("valid", "test") for item in dataset[key] if item[0].database == "MedleyDB"]
    assert medleydb
    for item in medleydb:
        np.testing.assert_allclose(sum(read(sample) for sample in item[1:]), read(item[0]), atol=1e-5)
    mixtures, drums, bass, other, voices = dataset["train_unsup"]
    assert {sample.database for sample in mixtures} == {"MedleyDB", "CCMixter", "iKala"}
    assert {sample.database for sample in voices} == {"MedleyDB", "CCMixter", "iKala"}
    for samples in (drums, bass, other):
        assert {sample.database for sample in samples} == {"MedleyDB"}
    # Their valid and test songs cannot be scored on drums: left out, not given a made-up stem.
    assert not {item[0].database for key in ("valid", "test") for item in dataset[key]} & {"CCMixter", "iKala"}
    table = DatasetDicts.dataset_table(dataset, FOUR)
    assert "train_unsup/drums" in table and "train_unsup/voice" in table


def test_medleydb_stems_sum_the_labels_of_the_mapping_file(setup):
    dataset = build(setup, sources=FOUR, unsupervised_databases=["MedleyDB"])
    items = [item for key in ("valid", "test") for item in dataset[key] if item[0].database == "MedleyDB"]
    items += list(zip(*dataset["train_unsup"]))
    sing = find(items, "Sing")  # female singer, electric bass, male singer
    assert np.abs(read(sing[1])).max() == 0 and np.abs(read(sing[3])).max() == 0  # no drums, no other
    assert np.abs(read(sing[2])).max() > 0 and np.abs(read(sing[4])).max() > 0
    instrumental = find(items, "Instrumental")  # drum set, piano
    assert np.abs(read(instrumental[1])).max() > 0 and np.abs(read(instrumental[3])).max() > 0
    assert np.abs(read(instrumental[2])).max() == 0 and np.abs(read(instrumental[4])).max() == 0


def test_the_default_sources_give_the_triples_of_today(setup):
    assert build(setup) == build(setup, sources=("accompaniment", "voice"))
    dataset = build(setup)
    assert all(len(item) == 3 for key in ("train_sup", "valid", "test") for item in dataset[key])
    assert len(dataset["train_unsup"]) == 3


def test_a_supervised_database_without_a_source_is_refused_before_any_work(setup):
    with pytest.raises(DatasetConfigError, match="supervised database SongFolders cannot give drums, bass, other"):
        build(setup, sources=FOUR, supervised_database="SongFolders", unsupervised_databases=[])
    with pytest.raises(DatasetConfigError, match="no database gives a source named 'piano'"):
        build(setup, sources=("piano", "voice"))


def test_a_supervised_song_without_a_stem_is_a_clear_error(setup, tmp_path):
    (tmp_path / "data" / "DSD100" / "Sources" / "Dev" / "001 - Alpha - First" / "drums.wav").unlink()
    with pytest.raises(DatasetConfigError, match="Song '.*First' of the supervised database DSD100 has no drums"):
        build(setup, sources=FOUR)


def test_a_custom_dataset_may_name_its_sources(wav_factory):
    from Sample import Sample

    samples = {role: Sample.from_path(wav_factory(f"{role}.wav", np.zeros((SR, 1)), SR)) for role in ("mix", "d", "v")}
    item = {"mixture": samples["mix"], "drums": samples["d"], "voice": samples["v"]}
    dataset = {"train_sup": [item], "valid": [], "test": [], "train_unsup": {"mixtures": [samples["mix"]]}}
    checked = DatasetDicts.validate_dataset(dataset, sources=("drums", "voice"))
    assert checked["train_sup"] == [(samples["mix"], samples["d"], samples["v"])]
    assert checked["train_unsup"] == [[samples["mix"]], [], []]
    with pytest.raises(DatasetConfigError, match=r"must name exactly mixture, voice, drums, bass"):
        DatasetDicts.validate_dataset(dataset, sources=("voice", "drums", "bass"))
    with pytest.raises(DatasetConfigError, match="unknown list"):
        DatasetDicts.validate_dataset(dict(dataset, train_unsup={"vocals": []}), sources=("drums", "voice"))
    with pytest.raises(DatasetConfigError, match=r"\(mixture, accompaniment, voice\) tuple"):
        DatasetDicts.validate_dataset(dict(dataset, train_sup=[(samples["mix"], samples["v"])]))


def test_vocals_is_not_a_source_name():
    with pytest.raises(ConfigError, match="calls the singing voice 'voice'"):
        ModelConfig.from_dict({"sources": ["drums", "bass", "other", "vocals"]})


def test_the_medleydb_mapping_file(tmp_path):
    labels = Sources.read_medleydb_labels()
    assert labels.instrument_of["drum set"] == "Drums" and labels.instrument_of["double bass"] == "Bass"
    assert {"male singer", "choir"} <= labels.vocal and "male speaker" not in labels.instrument_of
    assert [Sources.medleydb_stem(name) for name in ("Voice", "Drums", "Bass", "Piano", "Other")] == [
        "voice",
        "drums",
        "bass",
        "other",
        "other",
    ]
    for text, message in (
        ("Drums: [tabla]\nBass: [tabla]\n", "'tabla' is listed under Drums and Bass"),
        ("Horns: [trumpet]\n", "unknown key 'Horns'"),
        ("Drums: tabla\n", "Drums must be a list"),
    ):
        path = tmp_path / "labels.yaml"
        path.write_text(text)
        with pytest.raises(DatasetConfigError, match=message):
            Sources.read_medleydb_labels(str(path))


def test_items_lacking_a_source_never_reach_training_or_evaluation(wav_factory):
    from databases.Partition import without_missing
    from Sample import Sample

    mix, voice = (Sample.from_path(wav_factory(f"{name}.wav", np.zeros((SR, 1)), SR)) for name in ("mix", "voice"))
    dataset = {
        "train_sup": [(mix, voice, voice)],
        "train_unsup": [[mix, mix], [None, voice], [voice, voice]],
        "valid": [(mix, None, voice)],
        "test": [],
    }
    cleaned = without_missing(dataset)
    assert cleaned["train_unsup"] == [[mix, mix], [voice], [voice, voice]]
    assert cleaned["valid"] == [] and cleaned["train_sup"] == dataset["train_sup"]
