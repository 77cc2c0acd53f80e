"""DatasetXML.py: the shipped XMLs, reading and writing, the errors for bad XML files, and files that
must lie inside their database folder."""

import dataclasses
import os
import shutil

import pytest

from databases import DatasetLayouts, DatasetXML
from Datasets import DatasetConfigError

from conftest import write_wav
from fake_databases import PAPER_DATABASES, REPO, SR, build, make_dsd100, noise


@pytest.mark.parametrize("name", PAPER_DATABASES)
def test_shipped_xmls_have_an_obvious_placeholder_and_no_tracks(name):
    description = DatasetXML.read_database_xml(os.path.join(REPO, f"{name}.xml"))
    assert description.name == name
    assert description.folder == f"/path/to/{name}" and DatasetXML.is_placeholder_folder(description.folder)
    assert description.tracks == ()


def test_xml_round_trip(tmp_path):
    description = DatasetLayouts.discover_database("DSD100", make_dsd100(tmp_path / "DSD100"))
    xml_path = str(tmp_path / "out" / "DSD100.xml")
    DatasetXML.write_database_xml(xml_path, description)
    assert DatasetXML.read_database_xml(xml_path) == description
    DatasetXML.write_empty_xml(xml_path, "CCMixter")
    assert DatasetXML.read_database_xml(xml_path) == DatasetXML.DatabaseDescription("CCMixter", "/path/to/CCMixter", ())


def test_hand_written_xml_with_comments_and_few_tags(tmp_path):
    xml_path = tmp_path / "mine.xml"
    xml_path.write_text(
        "<database><!-- mine --><databaseName>CCMixter</databaseName>"
        "<databaseFolderPath>/data/cc</databaseFolderPath><trackList><track><title>T</title>"
        "<instrumentList><instrument><relativeFilepath>a/mix.wav</relativeFilepath>"
        "<instrumentName>Mix</instrumentName></instrument></instrumentList></track>"
        "</trackList></database>"
    )
    track = DatasetXML.read_database_xml(str(xml_path)).tracks[0]
    assert (track.song_name, track.split, track.instruments[0].name, track.instruments[0].sample_rate) == (
        "T",
        None,
        "Mix",
        0,
    )


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
        handle.write(
            text.replace("<instrumentName>Voice</instrumentName>", "<instrumentName>Vocals</instrumentName>", 1)
        )
    with pytest.raises(DatasetConfigError) as raised:
        build(setup)
    message = str(raised.value)
    for part in (setup["xmls"]["CCMixter"], "Abe - First Song", "'Vocals'", "Mix, Voice, Instrumental"):
        assert part in message


def test_xml_of_another_database(setup):
    shutil.copy(setup["xmls"]["iKala"], setup["xmls"]["CCMixter"])
    with pytest.raises(DatasetConfigError, match="databaseName 'iKala'"):
        build(setup)


def _point_instrument_at(xml_path, instrument_name, relative_path):
    """Rewrite the first Training track's ``instrument_name`` file in ``xml_path``; returns the track's name."""
    description = DatasetXML.read_database_xml(xml_path)
    index = next(index for index, track in enumerate(description.tracks) if track.split == "Training")
    track = description.tracks[index]
    instruments = tuple(
        dataclasses.replace(item, relative_path=relative_path) if item.name == instrument_name else item
        for item in track.instruments
    )
    tracks = list(description.tracks)
    tracks[index] = dataclasses.replace(track, instruments=instruments)
    DatasetXML.write_database_xml(xml_path, dataclasses.replace(description, tracks=tuple(tracks)))
    return track.song_name


@pytest.mark.parametrize("escape", ["dot-dot", "symbolic link"])
def test_a_track_file_outside_the_database_folder_is_refused(setup, tmp_path, escape):
    build(setup)  # discovery fills the XMLs
    secret = write_wav(tmp_path / "outside" / "secret.wav", noise("secret"), SR)
    relative = "../../outside/secret.wav"
    if escape == "symbolic link":
        relative = "Sources/Dev/001 - Alpha - First/link.wav"
        os.symlink(secret, os.path.join(setup["roots"]["DSD100"], *relative.split("/")))
    song = _point_instrument_at(setup["xmls"]["DSD100"], "Voice", relative)
    with pytest.raises(DatasetConfigError) as raised:
        build(setup)
    message = str(raised.value)
    for part in (
        "DSD100",
        f"'{song}'",
        f"'{relative}'",
        os.path.realpath(secret),
        "outside the database folder",
        os.path.realpath(setup["roots"]["DSD100"]),
    ):
        assert part in message
    assert ("symbolic link" in message) == (escape == "symbolic link")


def test_symbolic_links_that_stay_inside_the_database_folder_are_followed(setup, tmp_path):
    build(setup)
    song_folder = os.path.join(setup["roots"]["DSD100"], "Sources", "Dev", "001 - Alpha - First")
    os.symlink("vocals.wav", os.path.join(song_folder, "alias.wav"))
    song = _point_instrument_at(setup["xmls"]["DSD100"], "Voice", "Sources/Dev/001 - Alpha - First/alias.wav")
    linked_root = tmp_path / "linked" / "DSD100"
    os.makedirs(linked_root.parent)
    os.symlink(setup["roots"]["DSD100"], linked_root)  # the database folder itself may be a link
    dataset = build(setup, dataset_roots=dict(setup["roots"], DSD100=str(linked_root)))
    voice = next(triple[2] for triple in dataset["train_sup"] if triple[0].song == song)
    assert voice.path == os.path.join(str(linked_root), "Sources", "Dev", "001 - Alpha - First", "alias.wav")
