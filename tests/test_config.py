"""The typed model configuration (common/Config.py) and Training.py's check of every setting."""

import contextlib
import io
import json
import logging
import math
import os
import re
import subprocess
import sys

import pytest

from common import Checkpoints, Utils
from common.Config import ConfigError, ModelConfig, Network, model_file_keys

from conftest import ROOT
from small_config import small_config


def test_an_unknown_key_is_refused_naming_the_key_it_resembles():
    with pytest.raises(ConfigError, match=r"unknown key 'alpah' \(did you mean 'alpha'\?\)"):
        ModelConfig.from_dict({"alpah": 0.01})
    with pytest.raises(ConfigError, match=r"'num_layer' \(did you mean 'num_layers'\?\)"):
        small_config(num_layer=3)


@pytest.mark.parametrize(
    "key, value",
    [
        ("alpha", math.nan),
        ("beta", -0.1),
        ("lam", math.inf),
        ("init_disc_lr", 0),
        ("init_sup_sep_lr", "fast"),
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("num_workers", -1),
        ("epoch_it", 0),
        ("num_disc", True),
        ("critic_warmup", -1),
        ("critic_adam_betas", [0.5]),
        ("critic_adam_betas", [0.5, 1.0]),
        ("sources", []),
        ("sources", ["voice", "voice"]),
        ("sources", "voice"),
        ("num_layers", 0),
        ("output_init", "zeros"),
        ("duration", 0),
        ("min_replacement_rate", -1),
        ("mono_downmix", False),
        ("scale_unpaired_mixtures", 1),
        ("num_fft", 1),
        ("expected_sr", 8192.5),
        ("precision", "fp16"),
        ("precision", None),
        ("model_base_dir", ""),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=re.escape(f"model_config.{key}=")):
        ModelConfig.from_dict({key: value})


def test_a_hop_longer_than_the_window_is_refused():
    with pytest.raises(ConfigError, match=r"model_config\.num_hop=600 exceeds model_config\.num_fft=512"):
        ModelConfig.from_dict({"num_hop": 600})


def test_the_defaults_are_the_papers_and_the_shapes_are_derived_once():
    config = ModelConfig()
    assert config.to_dict() == ModelConfig.from_dict(config.to_dict()).to_dict()
    assert (config.network.input_shape, config.network.output_shape) == ((350, 158), (258, 66))
    assert config.network.critic_shape == (256, 64) and config.network.context_frames == 46
    assert config.signal.bins == 257 and config.training.num_disc == 5 and config.precision == "float32"
    assert Network(num_layers=2, num_freqs=16, num_frames=8).output_shape == (18, 10)


def test_replace_checks_the_new_value_and_keeps_the_rest():
    config = small_config(batch_size=3)
    changed = config.replace(num_layers=3)
    assert changed.network.num_layers == 3 and changed.training.batch_size == 3 and config.network.num_layers == 2
    with pytest.raises(ConfigError, match="model_config.num_layers"):
        config.replace(num_layers=0)


def test_a_typed_config_round_trips_through_model_config_json(tmp_path):
    config = small_config(
        sources=["drums", "bass", "rest"],
        critic_adam_betas=[0.5, 0.9],
        precision="mixed",
        alpha=0.25,
        output_init="glorot",
    )
    Checkpoints.write_model_config(str(tmp_path), config)
    with open(tmp_path / Checkpoints.MODEL_CONFIG_FILE, encoding="utf-8") as handle:
        stored = json.load(handle)
    assert stored == config.to_dict()  # a flat dict of today's keys
    assert stored["sources"] == ["drums", "bass", "rest"] and stored["critic_adam_betas"] == [0.5, 0.9]
    assert Checkpoints.read_model_config(str(tmp_path)) == config


def write_json(folder, values):
    os.makedirs(folder, exist_ok=True)
    Utils.atomic_write_json(os.path.join(folder, Checkpoints.MODEL_CONFIG_FILE), values)
    return str(folder)


def test_an_old_model_config_json_without_the_newer_keys_still_loads(tmp_path):
    # What a run wrote before precision, output_init, critic_adam_betas, critic_warmup and
    # scale_unpaired_mixtures existed.
    old = {
        key: value
        for key, value in small_config(num_layers=3).to_dict().items()
        if key not in ("precision", "output_init", "critic_adam_betas", "critic_warmup", "scale_unpaired_mixtures")
    }
    config = Checkpoints.read_model_config(write_json(tmp_path / "old", old))
    assert config.network.num_layers == 3
    assert (
        config.precision,
        config.network.output_init,
        config.training.critic_adam_betas,
        config.training.critic_warmup,
        config.training.scale_unpaired_mixtures,
    ) == ("float32", "nonnegative", (0.9, 0.999), 0, True)
    # The separator's minimal files (the network and its signal) load too.
    minimal = {key: old[key] for key in model_file_keys()}
    assert Checkpoints.read_model_config(write_json(tmp_path / "minimal", minimal)).network.num_layers == 3


def test_a_model_config_json_with_an_unknown_or_missing_key_names_the_file(tmp_path):
    values = small_config().to_dict()
    folder = write_json(tmp_path / "typo", dict(values, lamda=3))
    with pytest.raises(
        ConfigError,
        match=re.escape(os.path.join(folder, "model_config.json")) + r": unknown key 'lamda' \(did you mean 'lam'\?\)",
    ):
        Checkpoints.read_model_config(folder)
    folder = write_json(tmp_path / "no_fft", {key: value for key, value in values.items() if key != "num_fft"})
    with pytest.raises(ConfigError, match=r"no_fft/model_config\.json lacks num_fft"):
        Checkpoints.read_model_config(folder)
    folder = write_json(tmp_path / "bad", dict(values, batch_size=0))
    with pytest.raises(ConfigError, match=r"bad/model_config\.json: model_config\.batch_size=0"):
        Checkpoints.read_model_config(folder)


def test_the_typo_is_refused_by_the_command_line_before_any_folder_is_made(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    for command in (["print_config"], []):  # [] is the whole experiment, with its run observer
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "Training.py")] + command + ["with", "demo", "model_config.alpah=0.01"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode != 0
        assert "unknown key 'alpah' (did you mean 'alpha'?)" in result.stderr and "Traceback" not in result.stderr
        assert os.listdir(tmp_path) == []  # no runs/, cache/, checkpoints/ or logs/


@pytest.fixture
def training():
    import Training

    yield Training
    logging.getLogger().setLevel(logging.INFO)  # sacred sets the root logger's level


@pytest.mark.parametrize(
    "updates, named",
    [
        ({"model_config": {"batch_size": 0}}, "model_config.batch_size=0"),
        ({"model_config": {"alpha": math.nan}}, "model_config.alpha=nan"),
        ({"patience": 0}, "patience=0"),
        ({"max_epochs": -2}, "max_epochs=-2"),
        ({"semisup_init": "warm"}, "semisup_init='warm'"),
        ({"summary_every": 0}, "summary_every=0"),
        ({"eval_workers": -1}, "eval_workers=-1"),
        ({"partition": "train"}, "partition='train'"),
        ({"eval_precision": "half"}, "eval_precision='half'"),
        ({"experiment_id": "a/b"}, "experiment_id='a/b'"),
        ({"patiance": 2}, "unknown key 'patiance' (did you mean 'patience'?)"),
    ],
)
def test_every_command_refuses_a_bad_setting_before_it_starts(training, tmp_path, updates, named):
    for command in ("print_config", "datasets", "main"):
        with pytest.raises(training.UsageError, match=re.escape(named)):
            with contextlib.redirect_stdout(io.StringIO()):
                training.ex.run(command, config_updates=dict(updates, cache_dir=str(tmp_path / "cache")))
    assert os.listdir(tmp_path) == []


def test_print_config_describes_every_key(training):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        training.ex.run("print_config", named_configs=["demo"])
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in output.getvalue().splitlines()]
    entries = [line for line in lines if re.match(r"\s+\w+( = |:)", line)]
    undocumented = [line.strip() for line in entries if "  # " not in line]
    assert undocumented == []
    described = {line.split("=")[0].strip(): line.split("  # ", 1)[1] for line in entries if " = " in line}
    assert len([line for line in entries if line.startswith("    ") and " = " in line]) >= 30 + 4 + 6 + 1
    assert described["alpha"] == "weight of the adversarial loss L_u"
    assert described["spectrogram_cache"].startswith("compute each training file's magnitudes once")
    assert not described["dataset_pkl"].endswith(".")  # one line, not a comment's tail


def test_the_library_imports_without_sacred_settings_or_an_experiment():
    # What tests and bench/semisup_gain.py import to train and evaluate: nothing of Training.py's
    # set-up (sacred's capture mode, the experiment, its logging) happens on import.
    script = (
        "import sys; import sacred; mode = sacred.SETTINGS.CAPTURE_MODE\n"
        "from experiment import Experiment, Trainer, TrainingData, Settings\n"
        "print('Training' in sys.modules, sacred.SETTINGS.CAPTURE_MODE == mode)"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]


def test_legal_but_likely_wrong_process_counts_are_warned_about(caplog):
    from experiment import Settings

    with caplog.at_level("WARNING", logger="experiment.Settings"):
        warnings = Settings.warn_about_process_counts(num_workers=48, eval_workers=2, cpus=2)
    assert len(warnings) == 1 and "model_config.num_workers=48" in warnings[0] and "2 CPU(s)" in caplog.text
    assert Settings.warn_about_process_counts(num_workers=4, eval_workers=4, cpus=2) == []
    assert "eval_workers=9" in Settings.warn_about_process_counts(num_workers=0, eval_workers=9, cpus=4)[0]
