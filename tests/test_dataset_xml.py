"""DatasetXML.py: the shipped XMLs, reading and writing, and the errors for bad XML files."""

import os
import shutil

import pytest

from databases import DatasetLayouts
from databases import DatasetXML


from Datasets import DatasetConfigError
from fake_databases import PAPER_DATABASES, REPO, build, make_dsd100


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
    xml_path.write_text("<database><!-- mine --><databaseName>CCMixter</databaseName>"
                        "<databaseFolderPath>/data/cc</databaseFolderPath><trackList><track><title>T</title>"
                        "<instrumentList><instrument><relativeFilepath>a/mix.wav</relativeFilepath>"
                        "<instrumentName>Mix</instrumentName></instrument></instrumentList></track>"
                        "</trackList></database>")
    track = DatasetXML.read_database_xml(str(xml_path)).tracks[0]
    assert (track.song_name, track.split, track.instruments[0].name, track.instruments[0].sample_rate) == (
        "T", None, "Mix", 0)


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


def test_xml_of_another_database(setup):
    shutil.copy(setup["xmls"]["iKala"], setup["xmls"]["CCMixter"])
    with pytest.raises(DatasetConfigError, match="databaseName 'iKala'"):
        build(setup)
