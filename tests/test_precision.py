"""Mixed precision (Precision.py, model_config.precision) on tiny models.

The tests pass on any x86 CPU: the graphs are built with an explicit ``Precision.Policy``
(TensorFlow has bfloat16 and float16 CPU kernels with oneDNN on or off, only slow without
native support), and the machine's own choice is tested with a faked CPU description.

Tolerance of mixed against float32 (same weights, same data): bfloat16 keeps 8 bits of
mantissa, so every rounding moves a value by up to 2^-9 (0.2 %) of itself, 0.4 % between
neighbouring values. The tiny U-Net rounds ~8 times along its deepest path (input, 6
convolutions, the upcast), and the errors add up roughly like a random walk, so about
sqrt(8) * 0.4 % ~ 1.1 %; measured: 0.1 to 0.4 % of the largest output and 0.02 to 0.5 % on the
losses. We allow 3 % of the float32 value's scale: comfortably above bfloat16's rounding
(so no flaky failures from summation order on other CPUs), and far below what a real
mistake does (a float16 overflow, a missing cast, a wrong bias gradient move these by
tens of percent or make them non-finite).
"""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from test_models import random_batch, semi_supervised_feed, session

from common import Checkpoints, Precision, Utils
from common.Config import ModelConfig
from evaluation import Separation
from Models.TrainingGraph import build_training_graph
from Models.WGAN_Critic import Critic, gradient_penalty

from small_config import small_config
from tiny_model import TINY_CONFIG

tf.compat.v1.disable_eager_execution()

BFLOAT16 = Precision.Policy("mixed", "bfloat16", False, "test: bfloat16")
FLOAT16 = Precision.Policy("mixed", "float16", True, "test: float16 with loss scaling")
TOLERANCE = 0.03  # relative to the float32 value's scale, see the module docstring
HEAVY_OPS = ("Conv2D", "Conv2DBackpropInput", "MatMul")


def assert_close_to_scale(mixed, reference, what):
    """``|mixed - reference| <= TOLERANCE * max|reference|`` elementwise (scalars: their own size)."""
    mixed, reference = np.asarray(mixed, np.float64), np.asarray(reference, np.float64)
    scale = max(float(np.abs(reference).max()), 1e-6)
    error = float(np.abs(mixed - reference).max())
    assert np.isfinite(mixed).all(), what
    assert error <= TOLERANCE * scale, f"{what}: differs by {error:.3g}, {100 * error / scale:.2f} % of {scale:.3g}"


@pytest.fixture
def fake_machine(monkeypatch):
    """``describe(cpu_flags, gpus=(), onednn=True)``: what machine_policy sees (its cache cleared)."""

    def describe(cpu_flags, gpus=(), onednn=True):
        monkeypatch.setattr(Precision, "read_cpu_flags", lambda: None if cpu_flags is None else frozenset(cpu_flags))
        monkeypatch.setattr(Precision, "visible_gpus", lambda: list(gpus))
        monkeypatch.setattr(Precision, "onednn_enabled", lambda: onednn)
        Precision._machine_policy.cache_clear()

    yield describe
    Precision._machine_policy.cache_clear()


# --- The setting and the choice ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["half", "bfloat16", "Mixed", 16, True])
def test_a_bad_precision_is_a_clear_error_naming_the_setting(value):
    with pytest.raises(ValueError, match=r"model_config\.precision"):
        Precision.check_precision(value)
    with tf.Graph().as_default(), pytest.raises(ValueError, match=r"model_config\.precision"):
        build_training_graph(small_config(precision=value), semi_supervised=False)


def test_the_default_is_the_papers_float32():
    assert Precision.check_precision(None) == "float32"
    assert Precision.machine_policy(ModelConfig().precision) == Precision.FLOAT32
    assert (
        Precision.choose_policy("float32", gpus=[{"compute_capability": (9, 0)}], cpu_flags={"amx_bf16"})
        == Precision.FLOAT32
    )


@pytest.mark.parametrize(
    "gpus, flags, onednn, dtype, loss_scaling",
    [
        ((), {"avx512f", "avx512_bf16"}, True, "bfloat16", False),  # this project's AMD EPYC
        ((), {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True, "bfloat16", False),  # Xeon (AMX)
        ((), {"avx512f"}, True, "float32", False),  # AVX-512 without BF16
        ((), {"avx2", "fma"}, True, "float32", False),
        ((), {"avx512_bf16"}, False, "float32", False),  # TF_ENABLE_ONEDNN_OPTS=0
        ((), None, True, "float32", False),  # no /proc/cpuinfo
        ([{"device_name": "A100", "compute_capability": (8, 0)}], set(), True, "bfloat16", False),
        ([{"device_name": "T4", "compute_capability": (7, 5)}], {"avx512_bf16"}, True, "float16", True),
        ([{"device_name": "P100", "compute_capability": (6, 0)}], {"avx512_bf16"}, True, "float32", False),
    ],
)
def test_the_choice_follows_the_device(gpus, flags, onednn, dtype, loss_scaling):
    policy = Precision.choose_policy("mixed", gpus=gpus, cpu_flags=flags, onednn=onednn)
    assert (policy.precision, policy.compute_dtype, policy.loss_scaling) == ("mixed", dtype, loss_scaling)
    assert policy.mixed == (dtype != "float32") and policy.reason


def test_a_cpu_without_bfloat16_warns_naming_the_missing_flags_then_computes_in_float32(fake_machine, caplog):
    fake_machine({"avx2", "avx512f"})
    with caplog.at_level(logging.WARNING, logger="common.Precision"):
        policy = Precision.machine_policy("mixed")
    assert policy.compute_dtype == "float32" and policy.precision == "mixed"
    warning = " ".join(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert "avx512_bf16" in warning and "amx_bf16" in warning and "float32" in warning
    with tf.Graph().as_default():
        model = build_training_graph(small_config(precision="mixed"), semi_supervised=False)
        assert model.policy.compute_dtype == "float32"
        assert not ops_of_dtype(tf.compat.v1.get_default_graph(), tf.bfloat16)


def test_a_cpu_with_bfloat16_chooses_it_without_a_warning(fake_machine, caplog):
    fake_machine({"avx512f", "avx512_bf16"})
    with caplog.at_level(logging.WARNING, logger="common.Precision"):
        assert Precision.machine_policy("mixed").compute_dtype == "bfloat16"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_the_cpu_flags_are_read_from_proc_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx512f avx512_bf16\n\n")
    assert Precision.read_cpu_flags(str(cpuinfo)) == {"fpu", "avx512f", "avx512_bf16"}
    assert Precision.read_cpu_flags(str(tmp_path / "missing")) is None


# --- The graph --------------------------------------------------------------------------------


def ops_of_dtype(graph, dtype, types=None):
    """Ops (of ``types``, if given) whose ``T`` attribute is ``dtype``."""
    found = []
    for op in graph.get_operations():
        if types is not None and op.type not in types:
            continue
        try:
            if op.get_attr("T") == dtype:
                found.append(op)
        except ValueError:
            continue
    return found


def test_the_mixed_graph_runs_convolutions_in_bfloat16_and_keeps_weights_and_losses_float32():
    with tf.Graph().as_default() as graph:
        model = build_training_graph(small_config(), semi_supervised=True, seed=0, policy=BFLOAT16)
    heavy = [op for op in graph.get_operations() if op.type in HEAVY_OPS]
    in_bf16 = {op.name for op in ops_of_dtype(graph, tf.bfloat16, HEAVY_OPS)}
    in_f32 = {op.name for op in heavy} - in_bf16
    # float32 by design, forward and backward: the U-Net's 1x1 output convolutions and the critics'
    # score layers; every other convolution, transposed convolution and dense layer is bfloat16.
    assert in_bf16 and in_f32 and all("/output_" in name or "/score/" in name for name in in_f32), sorted(in_f32)
    assert not any("/output_" in name or "/score/" in name for name in in_bf16)
    assert all(
        variable.dtype.base_dtype == tf.float32
        for variable in tf.compat.v1.global_variables(graph)
        if variable.dtype.base_dtype.is_floating
    )
    losses = [
        model.supervised_loss,
        model.separator_loss,
        model.L_u,
        model.additive_penalty,
        model.validation_loss,
        *model.critic_losses.values(),
        *model.gradient_penalty.values(),
        *model.wasserstein.values(),
    ]
    outputs = [
        *model.separator_outputs.values(),
        *model.inference_outputs.values(),
        *model.critic_real_scores.values(),
        *model.critic_fake_scores.values(),
    ]
    assert all(tensor.dtype == tf.float32 for tensor in losses + outputs)
    # Normalisation, the gradient-penalty norm and every reduction of a loss stay float32.
    for op_type in ("Log1p", "Expm1", "Sqrt", "Mean", "Square"):
        assert not ops_of_dtype(graph, tf.bfloat16, {op_type}), op_type
    # No bfloat16 BiasAddGrad (its CPU kernel sums in bfloat16); the bias gradients use reduce_sum.
    assert not ops_of_dtype(graph, tf.bfloat16, {"BiasAddGrad"})


def first_and_later_values(policy, checkpoint, steps=5):
    """Losses, outputs and scores of a semi-supervised tiny model before and after ``steps`` updates
    of the critics and the separator, from the weights in ``checkpoint`` (saved first if missing)."""
    config = small_config(batch_size=4, init_sup_sep_lr=1e-3, init_unsup_sep_lr=1e-3, init_disc_lr=1e-3)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)
        model = build_training_graph(config, semi_supervised=True, seed=0, policy=policy)
        saver = tf.compat.v1.train.Saver(var_list=Precision.saved_variables())
        with session(graph) as sess:
            if os.path.exists(checkpoint + ".index"):
                sess.run(tf.compat.v1.global_variables_initializer())  # the loss scale, if any
                saver.restore(sess, checkpoint)
            else:
                sess.run(tf.compat.v1.global_variables_initializer())
                saver.save(sess, checkpoint)
            feed = semi_supervised_feed(model, np.random.default_rng(0))
            fetches = {
                "scalars": model.separator_scalars,
                "critics": model.critic_scalars,
                "outputs": model.separator_outputs,
                "scores": model.critic_real_scores,
            }
            values = [sess.run(fetches, feed)]
            for _ in range(steps):
                assert sess.run(model.critic_weights_finite, feed)
                assert sess.run(model.separator_weights_finite, feed)
            values.append(sess.run(fetches, feed))
            assert sess.run(model.global_step) == steps
    return values


@pytest.mark.parametrize("policy", [BFLOAT16, FLOAT16], ids=["bfloat16", "float16+loss scaling"])
def test_mixed_trains_with_finite_losses_and_agrees_with_float32(tmp_path, policy):
    checkpoint = str(tmp_path / "initial")
    reference = first_and_later_values(Precision.FLOAT32, checkpoint)
    mixed = first_and_later_values(policy, checkpoint)
    for when, ours, theirs in zip(("initial", "after 5 steps"), mixed, reference):
        for name in ("supervised_loss", "additive_penalty", "separator_loss"):
            assert_close_to_scale(ours["scalars"][name], theirs["scalars"][name], f"{when} {name}")
        for source in ours["outputs"]:
            assert_close_to_scale(ours["outputs"][source], theirs["outputs"][source], f"{when} {source} output")
            # The Wasserstein estimate is a difference of mean scores: compare the scores themselves.
            assert_close_to_scale(ours["scores"][source], theirs["scores"][source], f"{when} {source} scores")
        assert all(np.isfinite(value) for value in list(ours["scalars"].values()) + list(ours["critics"].values()))


def test_the_gradient_penalty_agrees_with_float32_where_it_is_not_zero():
    rng = np.random.default_rng(4)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(3)
        real, fake = tf.constant(random_batch(rng, 8, (16, 8))), tf.constant(random_batch(rng, 8, (16, 8)))
        penalties = {"float32": gradient_penalty(Critic("critic_gp", 4, 8), real, fake, seed=5)}
        with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=True):  # the same weights
            penalties["bfloat16"] = gradient_penalty(
                Critic("critic_gp", 4, 8, compute_dtype="bfloat16"), real, fake, seed=5
            )
        # Steeper critics, so that gradient norms exceed 1 and the one-sided penalty is not zero.
        steeper = tf.group(*[variable.assign(3.0 * variable) for variable in tf.compat.v1.global_variables()])
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(steeper)
            values = sess.run(penalties)
    assert values["float32"] > 0.1
    assert values["bfloat16"] == pytest.approx(values["float32"], rel=TOLERANCE)


# --- Loss scaling (float16 on GPUs; the logic is device-independent) ------------------------------


def test_loss_scaling_skips_a_non_finite_step_halves_the_scale_and_grows_it_after_good_steps():
    with tf.Graph().as_default() as graph:
        weight = tf.compat.v1.get_variable("w", [2], initializer=tf.compat.v1.ones_initializer())
        step = tf.compat.v1.get_variable(
            "global_step", [], tf.int64, trainable=False, initializer=tf.compat.v1.zeros_initializer()
        )
        factor = tf.compat.v1.placeholder(tf.float32, [])
        loss = tf.reduce_sum(factor * weight)
        with tf.compat.v1.variable_scope("solver"):
            train = Precision.loss_scaled_minimize(
                tf.compat.v1.train.GradientDescentOptimizer(0.5),
                loss,
                [weight],
                global_step=step,
                initial_scale=8.0,
                growth_interval=2,
            )
            scale, good_steps = tf.compat.v1.get_collection(Precision.LOSS_SCALE_COLLECTION)
        assert scale.op.name == "solver/loss_scale"
        assert {v.op.name for v in Precision.saved_variables()} == {"w", "global_step"}
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            history = []
            for value in (1.0, np.inf, 1.0, 1.0):
                sess.run(train, {factor: value})
                history.append(sess.run([weight, scale, good_steps, step]))
    (w1, s1, g1, n1), (w2, s2, g2, n2), (w3, s3, g3, _), (w4, s4, g4, n4) = history
    np.testing.assert_allclose(w1, [0.5, 0.5], rtol=1e-6)  # the unscaled gradient, 1, times 0.5
    assert (s1, g1, n1) == (8.0, 1, 1)
    np.testing.assert_array_equal(w2, w1)  # skipped: not finite
    assert (s2, g2, n2) == (4.0, 0, 2)  # halved; the step still counts
    np.testing.assert_allclose(w3, [0.0, 0.0], atol=1e-6)
    assert (s3, g3) == (4.0, 1)
    assert (s4, g4, n4) == (8.0, 0, 4)  # doubled after growth_interval good steps


# --- Saving, restoring and the Separator ---------------------------------------------------------


def separator_config(**changes):
    """small_config, whose 16 x 8 outputs suit its 16 frequency bins, as Separation.Separator needs."""
    return small_config(**changes)


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """A tiny semi-supervised model trained 2 steps in bfloat16 and saved as Training.py does, with
    ``precision: mixed`` in its model_config.json. Returns ``(folder, batch, mixed outputs)``."""
    folder = str(tmp_path_factory.mktemp("mixed_model"))
    config = separator_config(precision="mixed", init_sup_sep_lr=1e-3, init_unsup_sep_lr=1e-3)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)
        model = build_training_graph(config, semi_supervised=True, seed=0, policy=BFLOAT16)
        saver = tf.compat.v1.train.Saver(var_list=Precision.saved_variables())
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            feed = semi_supervised_feed(model, np.random.default_rng(1))
            for _ in range(2):
                sess.run(model.all_critics_train_op, feed)
                sess.run(model.separator_train_op, feed)
            batch = random_batch(np.random.default_rng(2), 3, model.input_shape)
            outputs = sess.run(model.inference_outputs, {model.inference_input: batch})
            Checkpoints.save_checkpoint(saver, sess, folder, 2)
    Checkpoints.write_model_config(folder, config)
    return folder, batch, outputs


def test_the_separator_reads_mixed_from_model_config_json(mixed_model, fake_machine):
    fake_machine({"avx512f", "avx512_bf16"})
    folder, batch, expected = mixed_model
    with open(os.path.join(folder, Checkpoints.MODEL_CONFIG_FILE), encoding="utf-8") as handle:
        assert json.load(handle)["precision"] == "mixed"
    with Separation.Separator(folder) as separator:
        assert separator.policy.compute_dtype == "bfloat16" and separator.model_config.precision == "mixed"
        assert ops_of_dtype(separator._graph, tf.bfloat16, HEAVY_OPS)
        outputs = separator.predict(batch)
    for name in expected:  # the same bfloat16 network (kernels may sum in another order)
        assert_close_to_scale(outputs[name], expected[name], name)


def test_the_separator_precision_argument_overrides_model_config_json(mixed_model, fake_machine, tmp_path):
    fake_machine({"avx512f", "avx512_bf16"})
    folder, batch, mixed = mixed_model
    with Separation.Separator(folder, precision="float32") as separator:
        assert separator.policy == Precision.FLOAT32 and separator.model_config.precision == "float32"
        assert not ops_of_dtype(separator._graph, tf.bfloat16)
        reference = separator.predict(batch)
    for name in mixed:
        assert_close_to_scale(mixed[name], reference[name], name)
    # A folder written before the setting existed is float32; it can be separated in mixed precision.
    old = str(tmp_path / "old")
    shutil.copytree(folder, old)
    values = Checkpoints.read_model_config(old).to_dict()
    del values["precision"]
    Utils.atomic_write_json(os.path.join(old, Checkpoints.MODEL_CONFIG_FILE), values)
    with Separation.Separator(old) as separator:
        assert separator.policy == Precision.FLOAT32
    with Separation.Separator(old, precision="mixed") as separator:
        assert separator.policy.compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match=r"model_config\.precision"):
        Separation.Separator(old, precision="fp16")


def test_training_refuses_a_bad_precision_before_writing_model_config_json(tmp_path):
    import Training

    folders = {"model_base_dir": str(tmp_path / "checkpoints"), "log_dir": str(tmp_path / "logs")}
    with pytest.raises(Training.UsageError, match=r"model_config\.precision"):
        Training.ex.run(
            "main",
            config_updates={
                "model_config": dict(folders, precision="fp8"),
                "use_demo": True,
                "cache_dir": str(tmp_path / "cache"),
            },
        )
    assert not os.path.exists(tmp_path / "checkpoints") and not os.path.exists(tmp_path / "cache")
    assert Training.config()["model_config"]["precision"] == "float32"


def test_the_separate_command_takes_eval_precision_over_the_checkpoints(mixed_model, fake_machine, tmp_path, caplog):
    import Training

    from conftest import write_wav

    fake_machine({"avx512f", "avx512_bf16"})
    folder = mixed_model[0]
    song = write_wav(
        tmp_path / "song.wav", 0.1 * np.random.default_rng(0).standard_normal(4000), TINY_CONFIG.signal.expected_sr
    )
    settings = {"model_path": folder, "input_path": song, "output_dir": str(tmp_path / "out")}
    with caplog.at_level(logging.INFO, logger="common.Precision"):
        Training.ex.run("separate", config_updates=dict(settings, eval_precision="float32"))
        assert "bfloat16" not in caplog.text  # the checkpoint's "mixed" was overridden
        Training.ex.run("separate", config_updates=dict(settings, overwrite=True))
        assert "bfloat16 on oneDNN" in caplog.text  # the checkpoint's own setting
    assert sorted(os.listdir(tmp_path / "out")) == ["song_accompaniment.wav", "song_voice.wav"]
    with pytest.raises(Training.UsageError, match=r"eval_precision='half'"):
        Training.ex.run("evaluate", config_updates=dict(settings, eval_precision="half", use_demo=True))
