"""The trainer (experiment/Trainer.py) and Training.py: phases, early stopping, checkpoints, resume,
NaN guard, TensorBoard, the CLI."""

import contextlib
import glob
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import soundfile
import tensorflow as tf

import Training
from common import Checkpoints, Utils
from databases import DemoDatabase
from experiment import Trainer
from experiment.Settings import PhaseSettings
from experiment.Summaries import GROUPS
from experiment.TrainingData import TrainingData
from Sample import Sample

from conftest import ROOT, process_gone, wait_until, write_wav
from small_config import small_config

tf.compat.v1.disable_eager_execution()

SR = 8192


def tiny_model_config(tmp_path, **changes):
    """A model small enough to train a few steps in a second or two (epoch_it=2, num_disc=1)."""
    settings = dict(
        model_base_dir=str(tmp_path / "checkpoints"),
        log_dir=str(tmp_path / "logs"),
        expected_sr=SR,
        init_disc_lr=1e-3,
        init_sup_sep_lr=1e-3,
        init_unsup_sep_lr=1e-3,
        num_freqs=32,
        num_fft=64,
        num_hop=32,
        critic_dense_units=4,
    )
    return small_config(**dict(settings, **changes))


def make_song(folder, index, seconds=2.0):
    """A (mixture, accompaniment, voice) triple of Samples with mixture = sum of sources."""
    t = np.arange(int(seconds * SR)) / SR
    accompaniment = 0.2 * np.sin(2 * np.pi * (110 + 20 * index) * t) + 0.1 * np.sin(2 * np.pi * 330 * t)
    voice = 0.3 * np.sin(2 * np.pi * (440 + 30 * index) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    paths = [
        write_wav(folder / f"song{index}_{role}.wav", audio, SR)
        for role, audio in (("mix", accompaniment + voice), ("acc", accompaniment), ("voice", voice))
    ]
    return tuple(Sample.from_path(path, database="tiny", song=f"song{index}") for path in paths)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_audio")
    songs = [make_song(folder, index) for index in range(4)]
    unpaired = [list(samples) for samples in zip(*songs[:2])]
    return {"train_sup": songs[:2], "train_unsup": unpaired, "valid": songs[2:3], "test": songs[3:]}


class FakePairedGenerator:
    """Random paired batches; from call ``fail_at`` on it raises ``error``, or calls
    ``on_failure()`` and returns a batch whose first source is +inf."""

    def __init__(self, model_config, fail_at=None, error=None, on_failure=None):
        (self.f_in, self.t_in), (self.f_out, self.t_out) = (
            model_config.network.input_shape,
            model_config.network.output_shape,
        )
        self.batch = model_config.training.batch_size
        self.sources = len(model_config.network.sources)
        self.fail_at, self.error, self.on_failure, self.calls = fail_at, error, on_failure, 0
        self.rng = np.random.default_rng(0)

    def get_batch(self):
        self.calls += 1
        failing = self.fail_at is not None and self.calls >= self.fail_at
        if failing and self.error is not None:
            raise self.error()
        mixture = self.rng.random((self.batch, self.f_in, self.t_in, 1), dtype=np.float32)
        sources = [
            self.rng.random((self.batch, self.f_out, self.t_out, 1), dtype=np.float32) for _ in range(self.sources)
        ]
        if failing and self.on_failure is not None:
            self.on_failure()
        elif failing:
            # (finite estimate - inf)^2 is +inf in IEEE arithmetic on every CPU; no kernel's
            # handling of NaN (max-pool, ReLU) is involved, unlike a NaN input.
            sources[0][:] = np.inf
        return [mixture] + sources


def set_learning_rate_to_nan():
    """What a diverging schedule does: the separator's learning rate (a variable) becomes NaN.

    Adam's update then makes every separator weight NaN (NaN times anything is NaN), while the
    loss of that step, computed before the update, is still finite."""
    session = tf.compat.v1.get_default_session()
    learning_rate = next(variable for variable in tf.compat.v1.global_variables() if variable.op.name == "sup_sep_lr")
    learning_rate.load(float("nan"), session)


def use_fake_generator(monkeypatch, generator):
    @contextlib.contextmanager
    def fake(data, model_config, semi_supervised, seed):
        yield generator, None, []

    monkeypatch.setattr(TrainingData, "batch_generators", fake)


def run_phase(phase, dataset, model_config, experiment_id="exp", seed=1, max_epochs=3, deterministic=False, **kwargs):
    settings = PhaseSettings(
        experiment_id=experiment_id,
        seed=seed,
        patience=10,
        max_epochs=max_epochs,
        summary_every=1,
        image_every=2,
        deterministic=deterministic,
    )
    return Trainer.optimise(phase, TrainingData(dataset), model_config, settings, **kwargs)


@pytest.mark.parametrize("failure, named", [(None, "supervised_loss"), (set_learning_rate_to_nan, "separator weights")])
def test_a_non_finite_loss_or_weight_stops_the_phase_naming_it_and_the_step_and_keeps_last_good_checkpoint(
    tmp_path, tiny_dataset, monkeypatch, caplog, failure, named
):
    config = tiny_model_config(tmp_path)
    use_fake_generator(monkeypatch, FakePairedGenerator(config, fail_at=5, on_failure=failure))
    state = run_phase("sup", tiny_dataset, config)
    assert state.finished and named in state.stop_reason and "step 4" in state.stop_reason
    assert "step 4" in caplog.text and "last good checkpoint" in caplog.text
    folder = Checkpoints.phase_folder(config.folders.model_base_dir, "exp", "sup")
    assert tf.train.latest_checkpoint(folder).endswith("model-4")
    assert state.epoch == 2 and state.best_checkpoint is not None and np.isfinite(state.test_loss)


def test_non_finite_critic_weights_stop_the_semi_supervised_phase(tmp_path, tiny_dataset, monkeypatch):
    # A NaN learning rate is refused by the configuration, so it is set after the graph is built.
    with pytest.raises(ValueError, match="model_config.init_disc_lr"):
        tiny_model_config(tmp_path, init_disc_lr=float("nan"))
    config = tiny_model_config(tmp_path)
    restore_or_initialise = Trainer.Trainer.restore_or_initialise

    def then_a_nan_critic_learning_rate(trainer):
        restore_or_initialise(trainer)
        trainer.graph.disc_lr.load(float("nan"), trainer.session)

    monkeypatch.setattr(Trainer.Trainer, "restore_or_initialise", then_a_nan_critic_learning_rate)
    with pytest.raises(RuntimeError, match="before any epoch finished"):
        run_phase("semisup", tiny_dataset, config, max_epochs=1)
    state = Checkpoints.PhaseState.load(
        Checkpoints.phase_folder(config.folders.model_base_dir, "exp", "semisup"), "semisup"
    )
    assert state.finished and "critics' weights" in state.stop_reason and "step 0" in state.stop_reason


def test_interrupt_saves_a_checkpoint_and_resume_continues_the_step_counter(tmp_path, tiny_dataset, monkeypatch):
    config = tiny_model_config(tmp_path, epoch_it=3)
    use_fake_generator(monkeypatch, FakePairedGenerator(config, fail_at=5, error=KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run_phase("sup", tiny_dataset, config, max_epochs=2)
    folder = Checkpoints.phase_folder(config.folders.model_base_dir, "exp", "sup")
    assert tf.train.latest_checkpoint(folder).endswith("model-4")
    interrupted = Checkpoints.PhaseState.load(folder, "sup")
    assert interrupted.epoch == 1 and interrupted.epoch_start_step == 3 and not interrupted.finished

    resumed_generator = FakePairedGenerator(config)
    use_fake_generator(monkeypatch, resumed_generator)
    state = run_phase("sup", tiny_dataset, config, max_epochs=2)
    assert [entry["step"] for entry in state.history] == [3, 6]
    assert resumed_generator.calls == 2  # only the two steps the interrupted epoch still needed
    assert state.finished and "max_epochs" in state.stop_reason
    # A finished phase is not trained again.
    assert run_phase("sup", tiny_dataset, config, max_epochs=5).history == state.history


def interrupted_run(tmp_path, dataset, monkeypatch):
    """A phase interrupted mid-epoch 3 (epoch_it=2): checkpoints model-4 (end of epoch 2) and
    model-5 (the interruption) are on disk."""
    config = tiny_model_config(tmp_path)
    use_fake_generator(monkeypatch, FakePairedGenerator(config, fail_at=6, error=KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run_phase("sup", dataset, config, max_epochs=3)
    folder = Checkpoints.phase_folder(config.folders.model_base_dir, "exp", "sup")
    assert tf.train.get_checkpoint_state(folder).all_model_checkpoint_paths[-2:] == [
        os.path.join(folder, "model-4"),
        os.path.join(folder, "model-5"),
    ]
    return config, folder


def truncate(path):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize(
    "damage, bad_file",
    [
        ("data", "model-5.data-00000-of-00001 is truncated"),
        ("index", "model-5.index is truncated"),
        ("gone", "model-5.index is missing"),
    ],
)  # the `checkpoint` state file still lists model-5
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(
    tmp_path, tiny_dataset, monkeypatch, caplog, damage, bad_file
):
    config, folder = interrupted_run(tmp_path, tiny_dataset, monkeypatch)
    if damage == "gone":
        for path in glob.glob(os.path.join(folder, "model-5.*")):
            os.remove(path)
    else:
        truncate(glob.glob(os.path.join(folder, f"model-5.{damage}*"))[0])
    use_fake_generator(monkeypatch, FakePairedGenerator(config))
    state = run_phase("sup", tiny_dataset, config, max_epochs=3)
    assert bad_file in caplog.text and "rewound to step 4" in caplog.text
    # Epochs 1 and 2 are kept; epoch 3 is trained again from model-4 (its step counter included).
    assert [entry["step"] for entry in state.history] == [2, 4, 6]
    assert state.finished and "max_epochs" in state.stop_reason and np.isfinite(state.test_loss)


def test_no_usable_checkpoint_is_a_clear_error(tmp_path, tiny_dataset, monkeypatch):
    config, folder = interrupted_run(tmp_path, tiny_dataset, monkeypatch)
    for path in glob.glob(os.path.join(folder, "model-*.data-*")):
        truncate(path)
    use_fake_generator(monkeypatch, FakePairedGenerator(config))
    with pytest.raises(Checkpoints.CheckpointError, match="none of its checkpoints can be restored") as error:
        run_phase("sup", tiny_dataset, config, max_epochs=3)
    assert "model-5.data-00000-of-00001" in str(error.value) and "model-4.data-00000-of-00001" in str(error.value)


def test_sigterm_stops_training_as_ctrl_c_does():
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        with Utils.terminate_like_ctrl_c():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises as soon as Python code runs again
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_each_run_gets_its_own_experiment_id():
    ids = {Training.config()["experiment_id"] for _ in range(20)}
    assert len(ids) == 20


def first_losses(tmp_path, dataset, seed, name):
    config = tiny_model_config(tmp_path, model_base_dir=str(tmp_path / name), log_dir=str(tmp_path / name))
    state = run_phase("sup", dataset, config, experiment_id=name, seed=seed, max_epochs=2, deterministic=True)
    return [entry["valid_loss"] for entry in state.history] + [state.test_loss]


@pytest.fixture
def op_determinism_off_afterwards():
    """Op determinism is process-wide: switch it off again so later tests may use unseeded ops."""
    yield
    from tensorflow.python.framework import config  # the public API can only switch it on

    config.disable_op_determinism()


def test_same_seed_gives_identical_losses_and_another_seed_does_not(
    tmp_path, tiny_dataset, op_determinism_off_afterwards
):
    first = first_losses(tmp_path, tiny_dataset, seed=5, name="a")
    again = first_losses(tmp_path, tiny_dataset, seed=5, name="b")
    other = first_losses(tmp_path, tiny_dataset, seed=6, name="c")
    assert first == again
    assert first != other


def summary_tags(log_dir):
    tags = set()
    for root, _, files in os.walk(log_dir):
        for name in files:
            if name.startswith("events"):
                for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                    tags.update(value.tag for value in event.summary.value)
    return tags


def test_semi_supervised_phase_trains_critics_and_writes_tensorboard_summaries(tmp_path, tiny_dataset):
    config = tiny_model_config(tmp_path)
    state = run_phase("semisup", tiny_dataset, config, max_epochs=1)
    assert state.finished and state.epoch == 1 and np.isfinite(state.test_loss)
    best = os.path.dirname(state.best_checkpoint)
    assert Checkpoints.read_model_config(best).network.sources == ("accompaniment", "voice")
    tags = summary_tags(config.folders.log_dir)
    expected = {
        "loss/supervised",
        "loss/adversarial",
        "loss/additive_penalty",
        "loss/unsupervised",
        "loss/total",
        "loss/learning_rate",
        "critics/learning_rate",
        "critics/loss_voice",
        "critics/wasserstein_accompaniment",
        "critics/gradient_penalty_voice",
        "validation/loss",
        "validation/best_loss",
        "pipeline/data_wait_fraction",
        "test/loss",
        "audio/mixture",
        "audio/voice_estimate",
        "audio/voice_true",
        "spectrogram/mixture",
        "spectrogram/voice_estimate_over_true",
        "spectrogram/voice_unpaired_estimate",
    }
    missing = expected - tags
    assert not missing, f"missing summaries {missing} in {sorted(tags)}"
    # Every tag is grouped; both sources of the tiny validation song sound, so both have an SDR.
    assert all(tag.split("/")[0] in GROUPS + ("audio", "spectrogram") for tag in tags), sorted(tags)
    assert {tag for tag in tags if tag.startswith("validation/sdr_")} == {
        "validation/sdr_accompaniment",
        "validation/sdr_voice",
    }


def run_cli(args, cwd, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "Training.py")] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fresh_clone_with_placeholder_paths_explains_how_to_configure_the_data(tmp_path):
    result = run_cli(["datasets"], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "dataset_roots.DSD100" in message and "with demo" in message and "databaseFolderPath" in message
    assert "Traceback" not in message


TINY_DEMO = [
    "demo_database.song_seconds=4",
    "demo_database.ikala_clip_seconds=4",
    "demo_database.dsd_songs_per_split=2",
    "demo_database.medleydb_songs=3",
    "demo_database.ccmixter_songs=3",
    "demo_database.ikala_clips=3",
    "partition_config.supervised_valid_songs=1",
    "eval_workers=1",
]


def test_tiny_demo_run_completes_both_phases_and_writes_results_then_evaluate_and_separate_work(tmp_path):
    result = run_cli(
        [
            "with",
            "demo",
            "experiment_id=tiny",
            "max_epochs=1",
            "model_config.epoch_it=2",
            "model_config.batch_size=2",
            "model_config.num_workers=1",
            "model_config.num_disc=1",
            "model_config.critic_warmup=1",
            "model_config.duration=2",
            "model_config.cache_size=4",
            "model_config.min_replacement_rate=1",
        ]
        + TINY_DEMO,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "runs" / "1" / "run.json") as handle:
        run = json.load(handle)
    assert run["status"] == "COMPLETED"
    # The training log reaches sacred's record of the run as well as the terminal.
    cout = (tmp_path / "runs" / "1" / "cout.txt").read_text()
    assert "INFO Training: supervised epoch 1 (step 2)" in cout and "semi-supervised phase finished" in cout
    for phase in ("supervised", "semi-supervised"):
        assert np.isfinite(run["result"][phase]["test_loss"])
    results = tmp_path / "results" / "tiny"
    for name in ("results.json", "per_song.csv", "summary.csv", "sdr_boxplot.png"):
        assert (results / name).is_file() and (tmp_path / "runs" / "1" / name).is_file()
    for name in ("headline.md", "headline.tex", "gain.json", "gain.txt", "full_table.txt"):
        assert (results / name).is_file() and (tmp_path / "runs" / "1" / name).is_file()
    assert f"The full table of every metric is in {os.path.join('results', 'tiny', 'full_table.txt')}" in result.stdout
    assert "NSDR" not in result.stdout  # the short table: SDR, SIR and SAR only
    assert "SDR" in result.stdout and "semi-supervised" in result.stdout
    # Below the table, the experiment's answer: one gain line per source with its song count.
    gain_lines = result.stdout.split("SDR gain of the semi-supervised over the supervised model")[1].splitlines()[1:]
    assert [line.split(":")[0].strip() for line in gain_lines[:2]] == ["accompaniment", "voice"]
    assert all(
        re.search(r"SDR [+-]\d+\.\d\d dB \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] over \d+ songs", line)
        for line in gain_lines[:2]
    )
    with open(tmp_path / "runs" / "1" / "info.json") as handle:
        gains = json.load(handle)["sdr_gain"]
    assert [row["source"] for row in gains if row["database"] == "all"] == ["accompaniment", "voice"]
    with open(results / "gain.json") as handle:
        assert [(row["database"], row["source"]) for row in json.load(handle)["rows"]] == [
            (row["database"], row["source"]) for row in gains
        ]

    model = "checkpoints/tiny_semisup/best"
    evaluation = run_cli(
        ["evaluate", "with", "demo", f"model_path={model}", "partition=valid"] + TINY_DEMO, cwd=tmp_path
    )
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert "tiny_semisup" in evaluation.stdout and "SDR" in evaluation.stdout

    song = write_wav(tmp_path / "my song.wav", 0.1 * np.random.default_rng(0).standard_normal((22051, 2)), 22050)
    separation = run_cli(
        ["separate", "with", f"model_path={model}", f"input_path={song}", "output_dir=out"], cwd=tmp_path
    )
    assert separation.returncode == 0, separation.stderr[-3000:]
    for source in ("voice", "accompaniment"):
        info = soundfile.info(str(tmp_path / "out" / f"my song_{source}.wav"))
        assert (info.samplerate, info.frames) == (22050, 22051)
    again = run_cli(["separate", "with", f"model_path={model}", f"input_path={song}", "output_dir=out"], cwd=tmp_path)
    assert again.returncode != 0 and "overwrite" in again.stderr and "Traceback" not in again.stderr


def test_the_demo_recipe_without_the_demo_data_keeps_training_settings_and_drops_data_settings():
    with contextlib.redirect_stdout(io.StringIO()):
        demo = Training.ex.run("print_config", named_configs=["demo"]).config
        recipe = Training.ex.run("print_config", named_configs=["demo"], config_updates={"use_demo": False}).config
        paper = Training.ex.run("print_config").config
    logging.getLogger().setLevel(logging.INFO)  # sacred sets the root logger's level
    assert demo["use_demo"] and not recipe["use_demo"]
    assert demo["partition_config"]["supervised_valid_songs"] == 2
    assert recipe["partition_config"] == paper["partition_config"]  # the paper's partition of your data
    for key in ("model_config", "patience", "max_epochs", "semisup_init"):  # the short-budget recipe stays
        assert recipe[key] == demo[key]
    assert recipe["model_config"] != paper["model_config"]


def test_the_demo_recipe_runs_on_data_given_by_dataset_roots(tmp_path):
    roots = DemoDatabase.generate_demo_database(
        str(tmp_path / "my data"),
        dsd_songs_per_split=2,
        medleydb_songs=3,
        ccmixter_songs=3,
        ikala_clips=3,
        song_seconds=4.0,
        ikala_clip_seconds=4.0,
    )
    settings = [f"dataset_roots.{name}={root}" for name, root in roots.items()]
    settings += [f"dataset_xmls.{name}={tmp_path / (name + '.xml')}" for name in roots]
    result = run_cli(["datasets", "with", "demo", "use_demo=False"] + settings, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "cache" / "demo").exists()  # the demo database was not generated
    assert str(tmp_path / "my data" / "DSD100") in open(tmp_path / "DSD100.xml", encoding="utf-8").read()
    # The paper's partition settings apply: all (2 < 25) DSD100 Test songs go to valid.
    assert "only 2 Test songs" in result.stderr


def test_a_validation_song_without_voice_gets_silent_clips(tmp_path, tiny_dataset):
    # The first validation song feeds TensorBoard's audio clips; an instrumental one has no voice file.
    mixture, accompaniment, _ = tiny_dataset["valid"][0]
    dataset = dict(tiny_dataset, valid=[(mixture, accompaniment, None)])
    state = run_phase("sup", dataset, tiny_model_config(tmp_path), max_epochs=1)
    assert state.epoch == 1 and state.best_checkpoint


SMALL_MODEL = [
    "model_config.num_fft=128",
    "model_config.num_hop=64",
    "model_config.num_freqs=64",
    "model_config.num_frames=16",
    "model_config.num_layers=2",
    "model_config.num_initial_filters=4",
    "model_config.critic_initial_filters=4",
    "model_config.critic_dense_units=4",
]


def test_resuming_with_settings_of_another_network_is_refused_before_anything_is_written(tmp_path, tiny_dataset):
    config = tiny_model_config(tmp_path, num_layers=2)
    run_phase("sup", tiny_dataset, config, max_epochs=1)
    folder = Checkpoints.phase_folder(config.folders.model_base_dir, "exp", "sup")
    stored = open(os.path.join(folder, Checkpoints.MODEL_CONFIG_FILE), encoding="utf-8").read()
    files = sorted(os.listdir(folder))

    other = config.replace(num_layers=1, num_initial_filters=8)
    with pytest.raises(
        Checkpoints.SettingsMismatchError,
        match=r"model_config.num_layers=1 \(the folder's: 2\); model_config.num_initial_filters=8",
    ):
        Checkpoints.check_same_network(folder, other)
    with pytest.raises(Checkpoints.SettingsMismatchError, match="num_layers"):
        run_phase("sup", tiny_dataset, other, max_epochs=2)
    assert open(os.path.join(folder, Checkpoints.MODEL_CONFIG_FILE), encoding="utf-8").read() == stored
    assert sorted(os.listdir(folder)) == files
    Checkpoints.check_same_network(folder, config.replace(init_sup_sep_lr=1e-4))  # other settings may change


def test_kill_9_mid_epoch_leaves_no_reader_behind_and_resume_continues_from_the_last_epoch(tmp_path):
    args = (
        [
            "with",
            "demo",
            "experiment_id=killed",
            "max_epochs=2",
            "model_config.epoch_it=200",
            "model_config.batch_size=2",
            "model_config.num_workers=2",
            "model_config.num_disc=1",
            "model_config.duration=2",
            "model_config.cache_size=4",
            "model_config.min_replacement_rate=1",
        ]
        + SMALL_MODEL
        + TINY_DEMO
    )
    state_file = tmp_path / "checkpoints" / "killed_sup" / Checkpoints.STATE_FILE
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    with open(tmp_path / "killed.log", "w") as log:
        trainer = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "Training.py")] + args, cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    try:

        def first_epoch_done():
            assert trainer.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            return state_file.is_file() and json.loads(state_file.read_text())["epoch"] >= 1

        assert wait_until(first_epoch_done, 300)
        children = [child.pid for child in psutil.Process(trainer.pid).children(recursive=True)]
        assert len(children) >= 2  # the reader processes of the paired generator (and their helpers)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(timeout=30)
    finally:
        trainer.kill()
        trainer.wait()
    assert wait_until(lambda: all(process_gone(pid) for pid in children), 15), [
        pid for pid in children if not process_gone(pid)
    ]
    before = json.loads(state_file.read_text())
    assert before["epoch"] == 1 and not before["finished"]  # killed during the second epoch

    refused = run_cli(args, cwd=tmp_path, timeout=300)
    assert refused.returncode != 0 and "already holds another run" in refused.stderr
    assert "resume=" in refused.stderr and "Traceback" not in refused.stderr

    resumed = run_cli(args + ["resume=checkpoints/killed_sup"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = Checkpoints.PhaseState.load(str(state_file.parent), "sup")
    assert after.history[0] == before["history"][0]  # the finished epoch was kept, not trained again
    assert [entry["step"] for entry in after.history] == [200, 400]  # only the killed epoch was redone
    assert "Resuming supervised phase" in resumed.stderr


@pytest.mark.parametrize("warmup, mixture_batches", [(0, 4), (3, 7)])
def test_critic_warmup_updates_the_critics_before_the_first_separator_step(
    tmp_path, tiny_dataset, monkeypatch, warmup, mixture_batches
):
    real = TrainingData.batch_generators
    calls = []

    @contextlib.contextmanager
    def counting(data, *args, **kwargs):
        with real(data, *args, **kwargs) as (paired, mixtures, sources):
            get_batch = mixtures.get_batch

            def counted():
                calls.append(1)
                return get_batch()

            mixtures.get_batch = counted
            yield paired, mixtures, sources

    monkeypatch.setattr(TrainingData, "batch_generators", counting)
    config = tiny_model_config(tmp_path, critic_warmup=warmup)  # epoch_it=2, num_disc=1
    state = run_phase("semisup", tiny_dataset, config, max_epochs=1)
    # Each separator step takes one mixture batch for its critic update and one for itself.
    assert state.epoch == 1 and len(calls) == mixture_batches
