"""What ``separate`` may write (issue 20, items 2, 3 and 8): never an input or a file it did not
write, one run at a time per output folder, a song's outputs all or none, and an output place
that cannot be written named before the model is loaded."""

import errno
import logging
import os
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile

from common import Utils
from evaluation import SeparateFiles

from conftest import ROOT, sine, wait_until, write_wav


def _no_model_load(*args, **kwargs):
    raise AssertionError("the model was loaded although the run had to be refused before")


def _model_of(path):
    with soundfile.SoundFile(path) as sound:
        assert sound.software.startswith(SeparateFiles.OUTPUT_TAG)
        return sound.comment


# ---- item 2: inputs and files separate did not write are never overwritten -------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_path_that_is_an_input_is_refused_whatever_overwrite_says(tmp_path, tiny_model, overwrite):
    folder = tmp_path / "songs"
    write_wav(folder / "a.wav", sine(440, 0.5, 22050), 22050)
    user_file = write_wav(folder / "a_voice.wav", sine(660, 0.5, 22050), 22050)
    before = open(user_file, "rb").read()

    with pytest.raises(
        FileExistsError,
        match=re.escape(user_file) + r" is one of the inputs.*not even with "
        r"overwrite=True",
    ):
        SeparateFiles.separate_path(tiny_model[0], str(folder), str(folder), overwrite=overwrite)

    assert open(user_file, "rb").read() == before
    assert sorted(os.listdir(folder)) == ["a.wav", "a_voice.wav"]


def test_overwrite_replaces_earlier_outputs_only_never_a_file_separate_did_not_write(tmp_path, tiny_model):
    song = write_wav(tmp_path / "in" / "a.wav", sine(440, 0.5, 22050), 22050)
    out = tmp_path / "out"
    foreign = write_wav(out / "a_voice.wav", sine(660, 0.5, 22050), 22050)  # the user's own recording
    before = open(foreign, "rb").read()

    with pytest.raises(FileExistsError, match=re.escape(foreign) + r" exists and was not written by separate"):
        SeparateFiles.separate_path(tiny_model[0], song, str(out), overwrite=True)
    assert open(foreign, "rb").read() == before and sorted(os.listdir(out)) == ["a_voice.wav"]

    os.remove(foreign)
    written = SeparateFiles.separate_path(tiny_model[0], song, str(out))
    assert SeparateFiles.separate_path(tiny_model[0], song, str(out), overwrite=True) == written  # ours: replaced


def test_outputs_in_the_input_folder_are_not_taken_as_inputs_by_the_next_run(tmp_path, tiny_model, caplog):
    folder = tmp_path / "songs"
    write_wav(folder / "a.wav", sine(440, 0.5, 22050), 22050)
    written = SeparateFiles.separate_path(tiny_model[0], str(folder), str(folder))
    assert sorted(os.listdir(folder)) == ["a.wav", "a_accompaniment.wav", "a_voice.wav"]

    with caplog.at_level(logging.INFO, logger=SeparateFiles.__name__):
        again = SeparateFiles.separate_path(tiny_model[0], str(folder), str(folder), overwrite=True)

    assert again == written  # not a_voice_voice.wav and friends
    assert sorted(os.listdir(folder)) == ["a.wav", "a_accompaniment.wav", "a_voice.wav"]
    assert "Leaving out 2 file(s)" in caplog.text


# ---- item 3: two runs into one folder ---------------------------------------------------------------------

DRIVER = """
import os, sys, time
sys.path.insert(0, {root!r})
from evaluation import SeparateFiles

model, inputs, output, paused, release = sys.argv[1:6]
if paused != "-":  # hold the run inside its first song until the test lets it go on
    separate_file = SeparateFiles._separate_file

    def held(separator, sample, mode):
        open(paused, "w").close()
        deadline = time.monotonic() + 240
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
        return separate_file(separator, sample, mode)

    SeparateFiles._separate_file = held
try:
    SeparateFiles.separate_path(model, inputs, output, overwrite=True)
except Exception as error:
    print(f"{{type(error).__name__}}: {{error}}", file=sys.stderr)
    sys.exit(3)
"""


def test_a_second_run_into_a_folder_in_use_fails_and_no_song_mixes_two_models(tmp_path, tiny_model):
    model_a, model_b = tiny_model[0], str(tmp_path / "model_b")
    shutil.copytree(model_a, model_b)
    for name in ("s1", "s2"):
        write_wav(tmp_path / "in" / f"{name}.wav", sine(440, 0.5, 22050), 22050)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(root=ROOT))
    paused, release, out = tmp_path / "paused", tmp_path / "release", tmp_path / "out"

    def start(model, hold):
        arguments = [model, str(tmp_path / "in"), str(out)] + ([str(paused), str(release)] if hold else ["-", "-"])
        return subprocess.Popen(
            [sys.executable, str(driver)] + arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = start(model_a, hold=True)
    try:
        assert wait_until(lambda: paused.exists() or first.poll() is not None, 240), "the first run never started"
        assert first.poll() is None, first.communicate()
        second = start(model_b, hold=False)
        _, second_errors = second.communicate(timeout=240)
    finally:
        release.touch()
        _, first_errors = first.communicate(timeout=240)

    assert first.returncode == 0, first_errors
    assert second.returncode == 3
    assert re.search(r"Output folder .*out is in use by another run \(process \d+ on .*lock file", second_errors)
    outputs = sorted(os.listdir(out))
    assert outputs == ["s1_accompaniment.wav", "s1_voice.wav", "s2_accompaniment.wav", "s2_voice.wav"]
    assert {_model_of(out / name) for name in outputs} == {f"model {os.path.join(model_a, 'model-7')}"}


def test_the_lock_is_released_and_a_held_lock_refuses_a_second_holder(tmp_path):
    lock = str(tmp_path / ".lock")
    with Utils.exclusive_lock(lock, "Folder x"):
        with pytest.raises(Utils.OutputError, match=rf"Folder x is in use by another run \(process {os.getpid()}"):
            with Utils.exclusive_lock(lock, "Folder x"):
                pass
    assert not os.path.exists(lock)
    with Utils.exclusive_lock(lock, "Folder x"):
        pass


# ---- item 8: full disks and unwritable places -------------------------------------------------------------


def test_an_output_dir_under_a_file_is_named_before_the_model_loads(tmp_path, tiny_model, monkeypatch):
    song = write_wav(tmp_path / "a.wav", sine(440, 0.5, 22050), 22050)
    (tmp_path / "notes.txt").write_text("not a folder")
    monkeypatch.setattr(SeparateFiles, "Separator", _no_model_load)
    with pytest.raises(
        Utils.OutputError,
        match=r"Cannot write into .*notes\.txt/out: .*notes\.txt is a file, "
        r"not a folder$",
    ):
        SeparateFiles.separate_path(tiny_model[0], song, str(tmp_path / "notes.txt" / "out"))


def test_too_little_free_space_is_named_before_the_model_loads(tmp_path, tiny_model, monkeypatch):
    song = write_wav(tmp_path / "a.wav", sine(440, 2.0, 44100), 44100)  # 2 outputs of 352.8 kB
    monkeypatch.setattr(SeparateFiles, "Separator", _no_model_load)
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(f_bavail=100, f_frsize=4096))
    with pytest.raises(
        Utils.OutputError,
        match=r"Cannot write into .*out: No space left on device "
        r"\(0\.7 MB needed, 0\.4 MB free\)",
    ):
        SeparateFiles.separate_path(tiny_model[0], song, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_disk_that_fills_up_leaves_no_partial_song_and_names_the_file(tmp_path, tiny_model, monkeypatch):
    for name in ("a", "b"):
        write_wav(tmp_path / "in" / f"{name}.wav", sine(440, 0.5, 22050), 22050)
    out = tmp_path / "out"
    fsync = os.fsync

    def full_disk_for_b_voice(fd):
        if ".b_voice.wav." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_for_b_voice)
    with pytest.raises(
        Utils.OutputError,
        match=r"^Cannot write .*out/b_voice\.wav: No space left on device\. "
        r"No output of .*b\.wav was written; the outputs of the 1 file\(s\) "
        r"before are complete$",
    ):
        SeparateFiles.separate_path(tiny_model[0], str(tmp_path / "in"), str(out))
    assert sorted(os.listdir(out)) == ["a_accompaniment.wav", "a_voice.wav"]  # no b_*, no temporary, no lock


def test_a_failed_run_removes_the_output_folder_it_created(tmp_path, tiny_model):
    bad = tmp_path / "in" / "a.wav"
    bad.parent.mkdir()
    audio = np.full(4000, 0.1, np.float32)
    audio[100] = np.nan
    soundfile.write(bad, audio, 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="is nan"):
        SeparateFiles.separate_path(tiny_model[0], str(bad), str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()


# ---- item 9: a truncated WAV is named -----------------------------------------------------------------------


def test_a_truncated_wav_is_separated_with_a_warning_giving_both_lengths(tmp_path, tiny_model, caplog):
    full = write_wav(tmp_path / "full.wav", sine(440, 4.0, 8000), 8000, subtype="PCM_16")
    data = open(full, "rb").read()
    truncated = tmp_path / "in" / "cut.wav"
    truncated.parent.mkdir()
    truncated.write_bytes(data[: 44 + 2 * int(8000 * 4 / 3)])
    with caplog.at_level(logging.WARNING):
        written = SeparateFiles.separate_path(tiny_model[0], str(truncated), str(tmp_path / "out"))
    assert re.search(
        re.escape(str(truncated)) + r" is truncated: its header promises 4\.000 s but it holds "
        r"1\.333 s",
        caplog.text,
    )
    assert soundfile.info(written[0]).frames == int(8000 * 4 / 3)
