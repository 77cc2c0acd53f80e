"""Utils.py: atomic writes keep the permissions any other tool would give a file; logging follows sys.stderr."""

import contextlib
import io
import logging
import os
import stat

import numpy as np
import pytest
from tqdm import tqdm

from common import Utils


@contextlib.contextmanager
def umask(value):
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def write_text(path, text="x"):
    with Utils.atomic_write(path, "w") as handle:
        handle.write(text)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_get_the_umask_s_permissions(tmp_path, mask, expected):
    with umask(mask):
        write_text(str(tmp_path / "a.txt"))
        Utils.atomic_write_json(str(tmp_path / "b.json"), {"a": 1})
        Utils.atomic_write_audio(str(tmp_path / "c.wav"), np.zeros(100, np.float32), 8192)
        with Utils.atomic_write(str(tmp_path / "d.npy"), "wb") as handle:
            np.save(handle, np.zeros(3))
    for name in ("a.txt", "b.json", "c.wav", "d.npy"):
        assert mode(tmp_path / name) == expected, name
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = str(tmp_path / "results.csv")
    write_text(path, "old")
    os.chmod(path, 0o640)
    with umask(0o022):
        write_text(path, "new")
    assert mode(path) == 0o640
    with open(path) as handle:
        assert handle.read() == "new"


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = str(tmp_path / "kept.txt")
    write_text(path, "old")
    with pytest.raises(RuntimeError):
        with Utils.atomic_write(path, "w") as handle:
            handle.write("half")
            raise RuntimeError("interrupted")
    with open(path) as handle:
        assert handle.read() == "old"
    assert os.listdir(tmp_path) == ["kept.txt"]


def test_the_log_handler_writes_to_the_sys_stderr_of_the_moment(monkeypatch):
    """Sacred (capture mode "sys") swaps sys.stderr after logging is set up: records must follow it
    into the run's cout.txt."""
    handler = Utils.CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    captured = io.StringIO()
    monkeypatch.setattr("sys.stderr", captured)
    handler.emit(logging.LogRecord("Training", logging.INFO, __file__, 1, "epoch %d done", (3,), None))
    assert captured.getvalue() == "INFO epoch 3 done\n"


def test_captured_output_keeps_the_log_lines_and_leaves_progress_bars_out():
    terminal = io.StringIO()
    terminal.write("00:00:01 INFO Training: start\n")
    for _ in tqdm(range(3), desc="epoch 1", file=terminal, leave=False, mininterval=0, disable=False):
        pass
    terminal.write("00:00:02 INFO Training: epoch 1 done\n")
    for _ in tqdm(range(2), desc="Separating", file=terminal, mininterval=0, disable=False):  # leaves its bar
        pass
    terminal.write("table\n\n  indented\nunfinished")
    text = terminal.getvalue()
    assert text.count("%|") >= 5
    expected = "00:00:01 INFO Training: start\n00:00:02 INFO Training: epoch 1 done\ntable\n\n  indented\n"
    for cut in range(0, len(text), 7):  # sacred's heartbeats, at any point of the output
        output_filter, captured, cout = Utils.CapturedOutputFilter(), "", ""
        for chunk in (text[:cut], text[cut : cut + 40], text[cut + 40 :]):
            filtered = output_filter(captured + chunk)
            assert filtered.startswith(captured), cut  # the file observer appends what is new
            cout += filtered[len(cout) :]
            captured = filtered
        assert cout == expected, cut
