"""Utils.py: atomic writes keep the permissions any other tool would give a file."""

import contextlib
import os
import stat

import numpy as np
import pytest

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
