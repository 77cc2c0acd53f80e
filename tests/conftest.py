"""Shared pytest fixtures: tiny audio files that the tests make themselves."""

import os
import shutil
import sys
import time

import numpy as np
import pytest
import soundfile

# Quiet TensorFlow's C++ start-up chatter in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def write_wav(path, audio, sample_rate=44100, subtype="FLOAT"):
    """Write ``audio`` ([samples] or [samples, channels]) to ``path``, creating folders."""
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    soundfile.write(str(path), np.asarray(audio, dtype=np.float32), sample_rate, subtype=subtype)
    return str(path)


def sine(frequency, seconds, sample_rate=44100, channels=1, amplitude=0.3):
    """A sine of ``frequency`` Hz, shape [samples] (mono) or [samples, channels]."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tone = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return tone if channels == 1 else np.stack([tone] * channels, axis=1)


def centre_crop(batch, shape):
    """numpy ``batch [B, F, T, C]`` cut to its centre ``shape = (F', T')``, the extra row or frame
    of an odd difference at the end: what ``Models.Inference.crop`` does to a tensor (test_models
    checks the two against each other)."""
    (height, width), (rows, frames) = shape, batch.shape[1:3]
    top, left = (rows - height) // 2, (frames - width) // 2
    return batch[:, top : top + height, left : left + width]


def process_gone(pid):
    """True once process ``pid`` has exited (a zombie waiting to be reaped counts as gone)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition, seconds):
    """Poll ``condition()`` every 50 ms for up to ``seconds``; returns its last value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def wav_factory(tmp_path):
    """Returns ``make(name, audio, sample_rate=44100)`` writing a WAV under tmp_path."""

    def make(name, audio, sample_rate=44100):
        return write_wav(tmp_path / name, audio, sample_rate)

    return make


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``(folder, batch, outputs)``: a saved tiny U-Net (tests/tiny_model.py), shared read-only."""
    from tiny_model import save_tiny_model

    return save_tiny_model(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="session")
def template_data(tmp_path_factory):
    """Tiny DSD100, MedleyDB, CCMixter and iKala folders, generated once and copied per test."""
    from fake_databases import MAKERS, PAPER_DATABASES

    folder = tmp_path_factory.mktemp("template")
    for name in PAPER_DATABASES:
        MAKERS[name](folder / name)
    return folder


@pytest.fixture
def setup(tmp_path, template_data):
    """A private copy of the tiny databases and copies of the shipped placeholder XMLs."""
    from fake_databases import PAPER_DATABASES, REPO

    shutil.copytree(template_data, tmp_path / "data")
    roots = {name: str(tmp_path / "data" / name) for name in PAPER_DATABASES}
    xmls = {}
    for name in PAPER_DATABASES:
        xmls[name] = str(tmp_path / "xml" / f"{name}.xml")
        os.makedirs(os.path.dirname(xmls[name]), exist_ok=True)
        shutil.copy(os.path.join(REPO, f"{name}.xml"), xmls[name])
    return {"roots": roots, "xmls": xmls, "cache": str(tmp_path / "cache"), "pkl": str(tmp_path / "dataset.pkl")}
