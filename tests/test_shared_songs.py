"""SharedSongs.py on fake song lists: songs found in two partitions end up in one, logged."""

import logging

import pytest

from databases.SharedSongs import keep_each_song_in_one_partition, song_identity
from Sample import Sample


def song(database, name, role="mixture"):
    return Sample(
        path=f"/data/{database}/{name}/{role}.wav",
        sample_rate=44100,
        channels=2,
        duration=30.0,
        database=database,
        song=name,
    )


def triple(database, name):
    return tuple(song(database, name, role) for role in ("mixture", "accompaniment", "voice"))


def dataset(train_sup=(), train_unsup=(), valid=(), test=()):
    unpaired = [list(samples) for samples in zip(*train_unsup)] if train_unsup else [[], [], []]
    return {"train_sup": list(train_sup), "train_unsup": unpaired, "valid": list(valid), "test": list(test)}


def names(items):
    return [(item[0].database, item[0].song) for item in items]


def unpaired_names(data):
    return [(sample.database, sample.song) for sample in data["train_unsup"][0]]


@pytest.mark.parametrize(
    "first, second",
    [
        (("MedleyDB", "Music Delta - 80s Rock"), ("MUSDB18", "Music Delta - 80s Rock")),
        (("MedleyDB", "A Classic Education - Night Owl"), ("MUSDB18HQ", "A Classic Education - NightOwl")),
        (("CCMixter", "Beyoncé - Halo"), ("MUSDB18", "beyonce - HALO")),
        (("iKala", "10171_chorus"), ("iKala", "10171_verse")),
    ],
)
def test_the_same_song_under_two_spellings_has_one_identity(first, second):
    assert song_identity(song(*first)) == song_identity(song(*second))


@pytest.mark.parametrize(
    "first, second",
    [
        (("iKala", "10171_chorus"), ("iKala", "10172_chorus")),
        (("MedleyDB", "Artist - Song"), ("MedleyDB", "Artist - Song 2")),
        (("CCMixter", "10171_chorus"), ("iKala", "10171_verse")),  # the id rule is iKala's only
    ],
)
def test_different_songs_have_different_identities(first, second):
    assert song_identity(song(*first)) != song_identity(song(*second))


def test_a_sample_without_a_song_name_is_identified_by_its_file():
    unnamed = Sample(path="/x/a.wav", sample_rate=8000, channels=1, duration=1.0)
    assert song_identity(unnamed) == "path:/x/a.wav"


def test_a_paired_training_song_is_dropped_from_valid_and_test_of_another_database(caplog):
    data = dataset(
        train_sup=[triple("MUSDB18", "Music Delta - 80s Rock"), triple("MUSDB18", "X - Y")],
        train_unsup=[triple("MedleyDB", "Z - Solo")],
        valid=[triple("MedleyDB", "MusicDelta - 80sRock")],
        test=[triple("MUSDB18", "Q - R"), triple("MedleyDB", "Music Delta - 80s Rock")],
    )
    with caplog.at_level(logging.INFO, logger="databases.SharedSongs"):
        result, decisions = keep_each_song_in_one_partition(data)
    assert names(result["train_sup"]) == [("MUSDB18", "Music Delta - 80s Rock"), ("MUSDB18", "X - Y")]
    assert names(result["valid"]) == []
    assert names(result["test"]) == [("MUSDB18", "Q - R")]
    assert unpaired_names(result) == [("MedleyDB", "Z - Solo")]
    assert [(d.action, d.source_partition, d.kept_partition) for d in decisions] == [
        ("dropped", "test", "train_sup"),
        ("dropped", "valid", "train_sup"),
    ]
    assert "'Music Delta - 80s Rock' (MedleyDB) is also in train_sup (MUSDB18): dropped from test" in caplog.text
    assert "1 song(s) were found in more than one partition: 0 entries moved, 2 dropped" in caplog.text


def test_a_song_in_train_unsup_and_test_stays_in_test_so_that_the_test_set_stays_whole():
    data = dataset(
        train_unsup=[triple("MedleyDB", "A - B"), triple("MedleyDB", "C - D")],
        test=[triple("MUSDB18", "A - B"), triple("MUSDB18", "E - F")],
    )
    result, decisions = keep_each_song_in_one_partition(data)
    assert names(result["test"]) == [("MUSDB18", "A - B"), ("MUSDB18", "E - F")]
    assert unpaired_names(result) == [("MedleyDB", "C - D")]
    assert [(d.action, d.source_partition, d.kept_partition) for d in decisions] == [("dropped", "train_unsup", "test")]


def test_ikala_clips_of_one_song_on_both_sides_of_a_split_point_are_moved_together():
    data = dataset(
        train_unsup=[triple("iKala", "10161_chorus"), triple("iKala", "10161_verse"), triple("iKala", "10164_chorus")],
        valid=[triple("iKala", "10164_verse"), triple("iKala", "10170_chorus")],
        test=[triple("iKala", "10170_verse"), triple("iKala", "10175_chorus")],
    )
    result, decisions = keep_each_song_in_one_partition(data)
    assert unpaired_names(result) == [("iKala", "10161_chorus"), ("iKala", "10161_verse")]
    assert names(result["valid"]) == [("iKala", "10164_verse"), ("iKala", "10164_chorus")]
    assert names(result["test"]) == [("iKala", "10170_verse"), ("iKala", "10175_chorus"), ("iKala", "10170_chorus")]
    assert [(d.song, d.action, d.source_partition, d.kept_partition) for d in decisions] == [
        ("10170_chorus", "moved", "valid", "test"),
        ("10164_chorus", "moved", "train_unsup", "valid"),
    ]


def test_a_clip_moved_out_of_train_unsup_leaves_the_three_unpaired_lists_aligned():
    data = dataset(
        train_unsup=[triple("iKala", "10161_chorus"), triple("iKala", "10200_chorus")],
        valid=[triple("iKala", "10161_verse")],
        test=[triple("MUSDB18", "10200_verse")],
    )
    result, decisions = keep_each_song_in_one_partition(data)
    assert [(d.song, d.action) for d in decisions] == [("10161_chorus", "moved")]  # the id rule is iKala's only
    assert names(result["valid"]) == [("iKala", "10161_verse"), ("iKala", "10161_chorus")]
    assert [[sample.path for sample in samples] for samples in result["train_unsup"]] == [
        [f"/data/iKala/10200_chorus/{role}.wav"] for role in ("mixture", "accompaniment", "voice")
    ]


def test_the_same_music_twice_in_one_partition_keeps_the_first_copy():
    data = dataset(test=[triple("MUSDB18", "A - B"), triple("MedleyDB", "A - B"), triple("MedleyDB", "C - D")])
    result, decisions = keep_each_song_in_one_partition(data)
    assert names(result["test"]) == [("MUSDB18", "A - B"), ("MedleyDB", "C - D")]
    assert [(d.database, d.action, d.source_partition) for d in decisions] == [("MedleyDB", "dropped", "test")]


def test_a_file_listed_twice_is_kept_once():
    data = dataset(valid=[triple("CCMixter", "A - B")], test=[triple("CCMixter", "A - B")])
    result, decisions = keep_each_song_in_one_partition(data)
    assert names(result["test"]) == [("CCMixter", "A - B")] and result["valid"] == []
    assert [(d.action, d.source_partition) for d in decisions] == [("dropped", "valid")]


def test_a_dataset_without_shared_songs_is_unchanged_and_nothing_is_logged(caplog):
    data = dataset(
        train_sup=[triple("DSD100", "A - B")],
        train_unsup=[triple("MedleyDB", "C - D")],
        valid=[triple("DSD100", "E - F")],
        test=[triple("iKala", "10161_chorus")],
    )
    with caplog.at_level(logging.INFO, logger="databases.SharedSongs"):
        result, decisions = keep_each_song_in_one_partition(data)
    assert result == data and decisions == [] and caplog.text == ""


def test_the_input_dataset_is_not_modified():
    data = dataset(train_sup=[triple("MUSDB18", "A - B")], test=[triple("MedleyDB", "A - B")])
    keep_each_song_in_one_partition(data)
    assert names(data["test"]) == [("MedleyDB", "A - B")]


def test_unaligned_unpaired_lists_are_refused():
    data = dataset()
    data["train_unsup"] = [[song("A", "x")], [], []]
    with pytest.raises(ValueError, match="train_unsup's lists have different lengths"):
        keep_each_song_in_one_partition(data)
