"""What the command line prints: TensorFlow's start-up lines once (and only when asked for), no
observer warning for commands that record nothing, no cuInit error without a GPU, readable help.

The command-line tests run Training.py in a subprocess with the environment a user has: without
the TF_CPP_MIN_LOG_LEVEL and CUDA_VISIBLE_DEVICES that conftest.py sets for the test process.
"""

import io
import os
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from common import Precision, TensorFlowSetup

from conftest import ROOT, write_wav

# absl's record prefix: "I0000 00:00:1796257568.233280   11150 port.cc:153] message"
RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ (\S+\] .*)$", re.MULTILINE)
ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
OBSERVER_WARNING = "No observers have been added"
TINY_DEMO = [
    "demo_database.song_seconds=4",
    "demo_database.ikala_clip_seconds=4",
    "demo_database.dsd_songs_per_split=2",
    "demo_database.medleydb_songs=3",
    "demo_database.ccmixter_songs=3",
    "demo_database.ikala_clips=3",
]


def startup_log(level):
    """TensorFlow's start-up output as this machine's TensorFlow 2.21 writes it, twice."""
    once = [
        ABSL_NOTICE,
        "I0000 00:00:1796257568.233280   11150 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796257568.233590   11150 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        "W0000 00:00:1796257568.240000   11150 example.cc:7] a warning",
        "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.",
        "E0000 00:00:1796257568.250000   11150 example.cc:9] an error",
    ]
    filtered = io.BytesIO()
    TensorFlowSetup.filter_stream(io.BytesIO(("\n".join(once + once) + "\n").encode()), filtered, level)
    return filtered.getvalue().decode().splitlines()


def test_the_filter_keeps_records_from_the_level_on_once_each_with_their_continuation_lines():
    assert startup_log(2) == ["E0000 00:00:1796257568.250000   11150 example.cc:9] an error"]
    shown = startup_log(1)
    assert [line.split("] ")[-1] for line in shown] == [
        "a warning",
        "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.",
        "an error",
    ]
    everything = startup_log(0)
    assert len(everything) == 6 and everything[0] == ABSL_NOTICE  # the first copy of each, in order
    assert startup_log(3) == []


def test_the_filter_passes_other_text_and_fatal_errors():
    text = (
        "Illegal instruction at start-up\n"
        "I0000 00:00:1.0   1 port.cc:153] noise\n"
        "F0000 00:00:2.0   1 cpu_feature_guard.cc:9] The TensorFlow library was compiled to use AVX\n"
    )
    filtered = io.BytesIO()
    TensorFlowSetup.filter_stream(io.BytesIO(text.encode()), filtered, 3)
    assert filtered.getvalue().decode().splitlines() == [text.splitlines()[0], text.splitlines()[2]]


@pytest.mark.parametrize("value, level", [(None, 0), ("0", 0), ("2", 2), ("3", 3), ("9", 3), ("loud", 0)])
def test_min_log_level_reads_tf_cpp_min_log_level(monkeypatch, value, level):
    if value is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", value)
    assert TensorFlowSetup.min_log_level() == level


@pytest.mark.parametrize("no_driver", [True, False])
def test_session_config_asks_for_no_gpu_only_without_a_cuda_driver(monkeypatch, no_driver):
    monkeypatch.setattr(TensorFlowSetup, "no_cuda_driver", lambda: no_driver)
    config = TensorFlowSetup.session_config(allow_soft_placement=True)
    assert config.allow_soft_placement
    assert dict(config.device_count) == ({"GPU": 0} if no_driver else {})


def test_no_cuda_driver_means_a_cuda_build_that_cannot_load_libcuda(monkeypatch):
    if not tf.test.is_built_with_cuda():
        pytest.skip("a TensorFlow without CUDA never probes for it")
    check = TensorFlowSetup.no_cuda_driver.__wrapped__

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(TensorFlowSetup.ctypes, "CDLL", missing)
    assert check() is True
    monkeypatch.setattr(TensorFlowSetup.ctypes, "CDLL", lambda name: object())
    assert check() is False


def test_mixed_precision_does_not_ask_tensorflow_for_gpus_without_a_driver(monkeypatch):
    def probe(*args):
        raise AssertionError("tf.config.list_physical_devices was called")

    monkeypatch.setattr(TensorFlowSetup, "no_cuda_driver", lambda: True)
    monkeypatch.setattr(tf.config, "list_physical_devices", probe)
    assert Precision.visible_gpus() == []


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def run_training(args, cwd, **env_changes):
    env = {
        key: value for key, value in os.environ.items() if key not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")
    }
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "Training.py")] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_quiet(result):
    """No TensorFlow start-up line, observer warning or cuInit error, and no line printed twice."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert not RECORD.findall(result.stderr) and ABSL_NOTICE not in output, result.stderr[:3000]
    assert OBSERVER_WARNING not in output
    assert "cuInit" not in output
    repeated = [line for line, count in Counter(result.stderr.splitlines()).items() if count > 1 and line.strip()]
    assert not repeated, repeated


def test_help_is_plain_text_with_the_commands_and_examples(tmp_path):
    result = run_training(["--help"], tmp_path)
    assert_quiet(result)
    text = result.stdout
    assert "Examples:" in text and "python Training.py with demo" in text
    for command in ("datasets", "evaluate", "separate", "print_config", "resume=", "model_path="):
        assert f"{command}" in text.split("Options:")[0], command
    markup = re.findall(r"``|:(?:func|class|mod|meth|attr):|\*\*|^#+ ", text, re.MULTILINE)
    assert not markup, markup


def test_print_config_is_quiet_and_tf_cpp_min_log_level_0_shows_the_start_up_lines_once(tmp_path):
    assert_quiet(run_training(["print_config"], tmp_path))
    loud = run_training(["print_config"], tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.returncode == 0, loud.stderr[-3000:]
    records = RECORD.findall(loud.stderr)
    assert records, loud.stderr[:3000]
    assert [record for record, count in Counter(records).items() if count > 1] == []
    assert loud.stderr.count(ABSL_NOTICE) == 1
    assert not (tmp_path / "runs").exists()


def test_datasets_records_nothing_and_gives_no_observer_warning(tmp_path):
    result = run_training(["datasets", "with", "demo"] + TINY_DEMO, tmp_path)
    assert_quiet(result)
    assert "train_sup" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_separate_makes_no_cuda_probe_and_records_nothing(tmp_path, tiny_model):
    song = write_wav(tmp_path / "song.wav", 0.1 * np.random.default_rng(0).standard_normal(8192), 8192)
    result = run_training(
        ["separate", "with", f"model_path={tiny_model[0]}", f"input_path={song}", "output_dir=out"], tmp_path
    )
    assert_quiet(result)
    assert (tmp_path / "out" / "song_voice.wav").is_file()
    assert not (tmp_path / "runs").exists()
