"""tools/tensorboard_screenshots.py: its addresses and what it says before it starts anything.

Taking real screenshots needs Chromium and a minute, so it is done by hand (docs/training.md,
"TensorBoard"); these tests cover what the script decides before that."""

import importlib.util
import os

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def script():
    path = os.path.join(ROOT, "tools", "tensorboard_screenshots.py")
    spec = importlib.util.spec_from_file_location("tensorboard_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_addresses_carry_the_tag_filter(script):
    url = "http://127.0.0.1:6006"
    assert script.page_url(url, "scalars", "") == url + "/#scalars"
    assert script.page_url(url, "images", "^loss/") == url + "/#images&tagFilter=%5Eloss%2F"
    assert script.page_url(url, "timeseries", "a|b") == url + "/?tagFilter=a%7Cb#timeseries"


def test_a_folder_without_event_files_is_refused_before_anything_starts(script, tmp_path, caplog):
    assert script.main([str(tmp_path)]) == 1
    assert "holds no TensorBoard event files" in caplog.text


def test_without_chromium_it_says_how_to_install_it(script, tmp_path, monkeypatch, caplog):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "events.out.tfevents.1.host").write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    assert script.main([str(tmp_path), "--out", str(tmp_path / "shots")]) == 2
    assert "apt-get install -y chromium" in caplog.text
    assert not (tmp_path / "shots").exists()
