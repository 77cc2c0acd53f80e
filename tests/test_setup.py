"""What the README's set-up promises: the commands it then uses exist, and ffmpeg is installed
(or the user is told exactly how) by tools/ensure-ffmpeg.sh, which `make` runs first."""

import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import Input
from Sample import Sample

from conftest import sine, write_wav

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENSURE_FFMPEG = os.path.join(REPO, "tools", "ensure-ffmpeg.sh")


def test_the_tensorboard_command_of_the_readme_is_installed():
    # README, "Monitoring": `tensorboard --logdir logs` from the project's environment.
    command = shutil.which("tensorboard", path=os.path.dirname(sys.executable)) or shutil.which("tensorboard")
    assert command, "tensorboard is not installed: it must be listed in requirements.txt"
    result = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()[0].isdigit()


@pytest.mark.parametrize("tool", ["ffmpeg", "ffprobe"])
def test_ffmpeg_is_installed_by_the_setup(tool):
    assert shutil.which(tool), f"{tool} is not on PATH: `make test` runs tools/ensure-ffmpeg.sh, which installs it"


def test_an_mp3_file_is_described_and_read_through_ffmpeg(tmp_path):
    wav = write_wav(tmp_path / "tone.wav", sine(440.0, 2.0, 22050), 22050)
    mp3 = str(tmp_path / "tone.mp3")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", wav, "-b:a", "128k", mp3], check=True, timeout=60)

    sample = Sample.from_path(mp3)
    assert sample.sample_rate == 22050 and sample.channels == 1
    assert sample.duration == pytest.approx(2.0, abs=0.1)  # MP3 frames pad the end
    audio = Input.read_audio(mp3, 8192, mono_downmix=True)
    reference = Input.read_audio(wav, 8192, mono_downmix=True)
    # An MP3 encoder delays the signal and adds padding; the tone's level survives either way.
    rms = float(np.sqrt(np.mean(audio[4096:12288] ** 2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(reference**2))), rel=0.1)


def _fake_tools(folder, uid, tools):
    """Scripts in ``folder`` that stand in for system commands: ``id`` prints ``uid``; every
    other name in ``tools`` logs its arguments, and a fake apt-get "installs" ffmpeg/ffprobe."""
    chmod = shutil.which("chmod")
    scripts = {"id": f"#!/bin/sh\necho {uid}\n"}
    for tool in tools:
        scripts[tool] = (
            f'#!/bin/sh\necho "{tool} $*" >> {folder}/calls.log\n'
            f'case "$*" in *install*) for t in ffmpeg ffprobe; do '
            f"printf '#!/bin/sh\\n' > {folder}/$t; {chmod} +x {folder}/$t; done;; esac\n"
        )
    for name, text in scripts.items():
        path = os.path.join(folder, name)
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


def _run_ensure_ffmpeg(folder):
    # PATH holds only the fake tools, so the real ffmpeg and package managers are not found.
    env = {"PATH": str(folder), "HOME": str(folder)}
    return subprocess.run([shutil.which("sh"), ENSURE_FFMPEG], capture_output=True, text=True, env=env, timeout=60)


def test_missing_ffmpeg_is_installed_with_apt_get_as_root(tmp_path):
    _fake_tools(str(tmp_path), 0, ["apt-get"])
    result = _run_ensure_ffmpeg(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "calls.log").read_text()
    assert "apt-get update" in calls and "apt-get install -y -qq --no-install-recommends ffmpeg" in calls
    assert "ffmpeg installed" in result.stdout


def test_missing_ffmpeg_without_root_stops_with_the_command_to_run(tmp_path):
    _fake_tools(str(tmp_path), 1000, ["apt-get"])
    result = _run_ensure_ffmpeg(tmp_path)
    assert result.returncode == 1
    assert "sudo apt-get install ffmpeg" in result.stderr
    assert not (tmp_path / "calls.log").exists()  # nothing was run on the user's behalf


def test_ffmpeg_already_on_path_is_left_alone(tmp_path):
    _fake_tools(str(tmp_path), 0, ["apt-get", "ffmpeg", "ffprobe"])
    result = _run_ensure_ffmpeg(tmp_path)
    assert result.returncode == 0 and result.stdout == ""
    assert not (tmp_path / "calls.log").exists()
