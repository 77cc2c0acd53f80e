"""Tests of Models/: U-Net shapes, critic, gradient penalty, loss terms, train ops, checkpoints."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from Models import Inference, Layers
from Models.TrainingGraph import build_training_graph
from Models.Unet import Unet
from Models.WGAN_Critic import Critic, critic_loss, gradient_penalty

from conftest import centre_crop
from small_config import small_config

tf.compat.v1.disable_eager_execution()

SOURCES = ("accompaniment", "voice")


def random_batch(rng, batch, shape):
    """Random linear magnitudes [batch, freq, frames, 1]."""
    return rng.uniform(0.0, 2.0, size=(batch,) + tuple(shape) + (1,)).astype(np.float32)


def session(graph):
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=graph, config=config)


# --- U-Net ---------------------------------------------------------------------------------


def test_padding_of_the_paper_defaults():
    assert Unet(4).get_padding((256, 64)) == ((350, 158), (258, 66))
    input_shape, output_shape = Unet(4).get_padding((256, 64))
    assert all(type(size) is int for size in input_shape + output_shape)


@pytest.mark.parametrize(
    "num_layers, desired", [(1, (16, 8)), (2, (16, 8)), (2, (30, 9)), (3, (64, 16)), (3, (41, 5)), (4, (256, 64))]
)
def test_unet_static_shapes_match_padding(num_layers, desired):
    unet = Unet(num_layers, num_initial_filters=2, source_names=("a", "b", "c"))
    input_shape, output_shape = unet.get_padding(desired)
    assert output_shape[0] >= desired[0] and output_shape[1] >= desired[1]
    for batch in (3, None):
        with tf.Graph().as_default():
            mixture = tf.compat.v1.placeholder(tf.float32, [batch, *input_shape, 1])
            outputs = unet.get_output(mixture, reuse=False)
            assert sorted(outputs) == ["a", "b", "c"]
            for output in outputs.values():
                assert output.shape.as_list() == [batch, *output_shape, 1]


def output_kernels_and_positive_fractions(output_init, seed):
    """The U-Net's 1x1 output kernels after initialisation, and the fraction of positive
    outputs on non-negative input."""
    unet = Unet(3, num_initial_filters=4, output_init=output_init)
    input_shape, _ = unet.get_padding((32, 16))
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(seed)
        mixture = tf.compat.v1.placeholder(tf.float32, [2, *input_shape, 1])
        outputs = unet.get_output(mixture, reuse=False)
        kernels = [v for v in tf.compat.v1.global_variables() if "output_" in v.name and "kernel" in v.name]
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            values = sess.run(outputs, {mixture: random_batch(np.random.default_rng(seed), 2, input_shape)})
            return sess.run(kernels), [float((v > 0).mean()) for v in values.values()]


def test_nonnegative_output_init_lets_no_output_start_dead():
    for seed in range(4):
        kernels, positive = output_kernels_and_positive_fractions("nonnegative", seed)
        assert len(kernels) == 2 and all((kernel >= 0).all() for kernel in kernels)
        assert min(positive) == 1.0
    # The reference's signed Glorot draw: same scale, both signs.
    kernels, _ = output_kernels_and_positive_fractions("glorot", 0)
    assert any((kernel < 0).any() for kernel in kernels)
    with pytest.raises(ValueError, match="output_init"):
        Unet(2, output_init="zeros")


def test_unet_rejects_an_inadmissible_input_size():
    with tf.Graph().as_default():
        mixture = tf.compat.v1.placeholder(tf.float32, [1, 351, 158, 1])
        with pytest.raises(ValueError, match="get_padding"):
            Unet(4).get_output(mixture, reuse=False)


def test_unet_with_unknown_batch_runs_on_any_batch_size():
    unet = Unet(2, num_initial_filters=4)
    input_shape, output_shape = unet.get_padding((16, 8))
    with tf.Graph().as_default() as graph:
        mixture = tf.compat.v1.placeholder(tf.float32, [None, *input_shape, 1])
        outputs = unet.get_output(mixture, reuse=False)
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for batch in (1, 3):
                values = sess.run(outputs, {mixture: np.ones((batch, *input_shape, 1), np.float32)})
                assert values["voice"].shape == (batch, *output_shape, 1)
                assert (values["voice"] >= 0).all()


def test_default_training_graph_has_the_paper_shapes():
    config = small_config(
        batch_size=64,
        num_freqs=256,
        num_frames=64,
        num_layers=4,
        num_initial_filters=16,
        critic_initial_filters=32,
        critic_dense_units=32,
    )
    with tf.Graph().as_default():
        graph = build_training_graph(config, semi_supervised=True)
        assert (graph.input_shape, graph.output_shape) == ((350, 158), (258, 66))
        assert graph.mixture.shape.as_list() == [64, 350, 158, 1]
        assert graph.unpaired_mixture.shape.as_list() == [64, 350, 158, 1]
        for name in SOURCES:
            assert graph.source_targets[name].shape.as_list() == [64, 258, 66, 1]
            assert graph.unpaired_sources[name].shape.as_list() == [64, 258, 66, 1]
            assert graph.separator_outputs[name].shape.as_list() == [64, 258, 66, 1]
            assert graph.critic_fake_inputs[name].shape.as_list() == [64, 256, 64, 1]
            assert graph.critic_real_scores[name].shape.as_list() == [64, 1]
            # 256x64 shrinks to 4x4 with 256 channels before the dense layers.
            shapes = {v.name.split("/", 1)[1]: v.shape.as_list() for v in graph.critic_variables(name)}
            assert shapes["hidden/kernel:0"] == [4 * 4 * 256, 32]
            assert shapes["score/kernel:0"] == [32, 1] and "score/bias:0" not in shapes
    # Outside the graph context the helpers still list this graph's variables:
    # 5 encoder convs, 4 x (up-conv, conv), 2 output convs, each with kernel and bias.
    assert len(graph.separator_variables()) == 2 * (5 + 8 + 2)
    assert all(v.name.startswith("separator/") for v in graph.separator_variables())


# --- Critic and gradient penalty --------------------------------------------------------------


@pytest.mark.parametrize("shape", [(256, 64), (16, 8), (32, 16)])
def test_critic_scores_one_number_per_example(shape):
    with tf.Graph().as_default() as graph:
        spectrogram = tf.compat.v1.placeholder(tf.float32, [None, *shape, 1])
        critic = Critic("critic_test", num_initial_filters=4, dense_units=8)
        scores = critic(spectrogram)
        assert scores.shape.as_list() == [None, 1]
        critic(spectrogram)  # a second call shares the variables
        assert len(critic.variables()) == len({v.name for v in critic.variables()})
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            assert sess.run(scores, {spectrogram: np.ones((3, *shape, 1), np.float32)}).shape == (3, 1)


def linear_critic(gradient_norm, num_values):
    """A critic whose gradient w.r.t. its input has the given norm everywhere."""
    weight = gradient_norm / np.sqrt(num_values)
    return lambda x: weight * tf.reduce_sum(x, axis=[1, 2, 3])[:, None]


@pytest.mark.parametrize("gradient_norm, expected", [(0.5, 0.0), (1.0, 0.0), (3.0, 4.0)])
def test_gradient_penalty_is_one_sided(gradient_norm, expected):
    rng = np.random.default_rng(0)
    with tf.Graph().as_default() as graph:
        real = tf.constant(random_batch(rng, 4, (8, 4)))
        fake = tf.constant(random_batch(rng, 4, (8, 4)))
        terms = critic_loss(linear_critic(gradient_norm, 8 * 4), real, fake, lam=10.0, seed=3)
        with session(graph) as sess:
            loss, wasserstein, penalty = sess.run([terms.loss, terms.wasserstein, terms.gradient_penalty])
    assert penalty == pytest.approx(expected, abs=1e-4)
    assert loss == pytest.approx(-wasserstein + 10.0 * expected, rel=1e-4, abs=1e-4)


def test_gradient_penalty_is_taken_between_real_and_fake():
    """With D(x) = sum(x^2)/2 the gradient is x, so the penalty reveals the interpolates."""
    with tf.Graph().as_default() as graph:
        real = tf.fill([64, 2, 2, 1], 1.0)  # gradient norm 2 at real points
        fake = tf.fill([64, 2, 2, 1], 3.0)  # gradient norm 6 at fake points
        penalty = gradient_penalty(
            lambda x: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None], real, fake, seed=1
        )
        with session(graph) as sess:
            value = sess.run(penalty)
    # Norm 2 + 4 * eps with eps ~ U[0, 1]: E[(1 + 4 eps)^2] = 1 + 4 + 16/3 = 31/3.
    assert 1.0 < value < 25.0
    assert value == pytest.approx(31.0 / 3.0, rel=0.2)


def test_gradient_penalty_is_reproducible_with_a_graph_seed():
    values = []
    for _ in range(2):
        with tf.Graph().as_default() as graph:
            tf.compat.v1.set_random_seed(7)
            rng = np.random.default_rng(1)
            real, fake = tf.constant(random_batch(rng, 4, (16, 8))), tf.constant(random_batch(rng, 4, (16, 8)))
            penalty = critic_loss(Critic("critic_x", 4, 8), real, fake, lam=10.0, seed=5).gradient_penalty
            with session(graph) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                values.append(sess.run(penalty))
    assert values[0] == values[1]


# --- Training graph -----------------------------------------------------------------------------


def test_supervised_training_overfits_one_batch():
    config = small_config(init_sup_sep_lr=3e-3, batch_size=2)
    rng = np.random.default_rng(0)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(0)
        model = build_training_graph(config, semi_supervised=False)
        assert model.L_u is None and model.critic_train_ops == {}
        mixture = random_batch(rng, 2, model.input_shape)
        centre = Layers.crop(tf.constant(mixture), *model.output_shape)
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            centre = sess.run(centre)
            feed = model.feed_paired([mixture, 0.7 * centre, 0.3 * centre])
            first = sess.run(model.supervised_loss, feed)
            for _ in range(300):
                sess.run(model.separator_train_op, feed)
            last = sess.run(model.supervised_loss, feed)
            assert sess.run(model.global_step) == 300
    assert last < 0.5 * first, (first, last)


def semi_supervised_feed(model, rng):
    batch = model.model_config.training.batch_size
    paired = [random_batch(rng, batch, model.input_shape)] + [
        random_batch(rng, batch, model.output_shape) for _ in model.sources
    ]
    feed = model.feed_paired(paired)
    feed.update(
        model.feed_unpaired(
            random_batch(rng, batch, model.input_shape),
            [random_batch(rng, batch, model.output_shape) for _ in model.sources],
        )
    )
    return feed


def snapshot(sess):
    return {
        v.name: value
        for v, value in zip(tf.compat.v1.trainable_variables(), sess.run(tf.compat.v1.trainable_variables()))
    }


def changed_variables(before, after):
    return {name for name in before if not np.array_equal(before[name], after[name])}


def assert_changes_only(changed, own):
    """Only ``own`` variables changed, and most of them (a dead ReLU output may get no gradient)."""
    assert changed <= own, sorted(changed - own)
    assert len(changed) >= len(own) // 2, (sorted(changed), sorted(own))


def test_train_ops_change_only_their_own_variables():
    rng = np.random.default_rng(0)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.set_random_seed(1)
        model = build_training_graph(
            small_config(init_disc_lr=1e-2, init_unsup_sep_lr=1e-2), semi_supervised=True, seed=0
        )
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            feed = semi_supervised_feed(model, rng)
            for name in model.sources:
                before = snapshot(sess)
                sess.run(model.critic_train_ops[name], feed)
                assert_changes_only(
                    changed_variables(before, snapshot(sess)), {v.name for v in model.critic_variables(name)}
                )
            before = snapshot(sess)
            sess.run(model.separator_train_op, feed)
            assert_changes_only(
                changed_variables(before, snapshot(sess)), {v.name for v in model.separator_variables()}
            )
            assert sess.run(model.global_step) == 1


def test_unsupervised_loss_terms_match_their_definitions():
    rng = np.random.default_rng(1)
    config = small_config(alpha=0.3, beta=0.2)
    with tf.Graph().as_default() as graph:
        model = build_training_graph(config, semi_supervised=True, seed=0)
        fetches = dict(
            outputs=model.unpaired_separator_outputs,
            fake=model.critic_fake_scores,
            L_u=model.L_u,
            P=model.additive_penalty,
            unsup=model.unsupervised_loss,
            sup=model.supervised_loss,
            total=model.separator_loss,
            paired_outputs=model.separator_outputs,
        )
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            feed = semi_supervised_feed(model, rng)
            values = sess.run(fetches, feed)
    mixture = feed[model.unpaired_mixture]
    (in_f, in_t), (out_f, out_t) = model.input_shape, model.output_shape
    top, left = (in_f - out_f) // 2, (in_t - out_t) // 2
    mixture_centre = mixture[:, top : top + out_f, left : left + out_t]
    estimate_sum = sum(np.expm1(values["outputs"][name]) for name in model.sources)
    assert values["P"] == pytest.approx(np.mean((mixture_centre - estimate_sum) ** 2), rel=1e-4)
    assert values["L_u"] == pytest.approx(-sum(values["fake"][name].mean() for name in model.sources), rel=1e-4)
    assert values["unsup"] == pytest.approx(0.3 * values["L_u"] + 0.2 * values["P"], rel=1e-4, abs=1e-6)
    supervised = sum(
        np.mean((values["paired_outputs"][name] - np.log1p(feed[model.source_targets[name]])) ** 2)
        for name in model.sources
    )
    assert values["sup"] == pytest.approx(supervised, rel=1e-4)
    assert values["total"] == pytest.approx(values["sup"] + values["unsup"], rel=1e-4)


def test_feed_helpers_reject_wrong_inputs():
    with tf.Graph().as_default():
        supervised = build_training_graph(small_config(), semi_supervised=False)
        with pytest.raises(ValueError, match="feed_paired"):
            supervised.feed_paired([np.zeros(1)])
        with pytest.raises(RuntimeError, match="semi_supervised=True"):
            supervised.feed_unpaired(np.zeros(1))
    with tf.Graph().as_default():
        model = build_training_graph(small_config(), semi_supervised=True)
        assert set(model.feed_unpaired(np.zeros(1), {"voice": np.zeros(1)})) == {
            model.unpaired_mixture,
            model.unpaired_sources["voice"],
        }
        with pytest.raises(ValueError, match="unknown source"):
            model.feed_unpaired(np.zeros(1), {"drums": np.zeros(1)})
    # The typed configuration always holds lam; a value the graph cannot use is refused by name.
    with pytest.raises(ValueError, match="model_config.lam"):
        build_training_graph(small_config(lam=-1), semi_supervised=False)


def test_save_then_restore_gives_identical_outputs(tmp_path):
    rng = np.random.default_rng(2)
    config = small_config(init_sup_sep_lr=1e-3)
    mixture = None
    outputs = []
    for restore in (False, True):
        with tf.Graph().as_default() as graph:
            model = build_training_graph(config, semi_supervised=True, seed=0)
            saver = tf.compat.v1.train.Saver()
            with session(graph) as sess:
                if restore:
                    saver.restore(sess, tf.compat.v1.train.latest_checkpoint(str(tmp_path)))
                    assert sess.run(model.global_step) == 2
                else:
                    sess.run(tf.compat.v1.global_variables_initializer())
                    feed = semi_supervised_feed(model, rng)
                    for _ in range(2):
                        sess.run(list(model.critic_train_ops.values()), feed)
                        sess.run(model.separator_train_op, feed)
                    mixture = random_batch(rng, 2, model.input_shape)
                    saver.save(sess, str(tmp_path / "model"), global_step=2)
                outputs.append(sess.run(model.separator_outputs, {model.mixture: mixture}))
    for name in SOURCES:
        np.testing.assert_array_equal(outputs[0][name], outputs[1][name])


def test_inference_outputs_share_the_separator_and_accept_any_batch():
    rng = np.random.default_rng(3)
    with tf.Graph().as_default() as graph:
        model = build_training_graph(small_config(), semi_supervised=False)
        assert set(model.separator_scalars) == {"supervised_loss", "separator_loss"}
        mixture = random_batch(rng, 2, model.input_shape)
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            training = sess.run(model.separator_outputs, {model.mixture: mixture})
            inference = sess.run(model.inference_outputs, {model.inference_input: mixture})
            more = sess.run(model.inference_outputs, {model.inference_input: np.concatenate([mixture] * 2)})
    for name in SOURCES:
        np.testing.assert_allclose(inference[name], np.expm1(training[name]), rtol=1e-5, atol=1e-6)
        assert more[name].shape == (4, *model.output_shape, 1)


def test_inference_normalise_denormalise_and_crop():
    magnitude = np.random.default_rng(2).random((3, 257, 10, 1)).astype(np.float32)
    padded = np.pad(magnitude, ((0, 0), (46, 47), (0, 0), (0, 0)))  # Input.pad_freqs(magnitude, 350)
    with tf.Graph().as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, [None, 257, 10, 1])
        normalised = Inference.normalise(placeholder)
        restored = Inference.denormalise(normalised)
        window = tf.compat.v1.placeholder(tf.float32, [None, 350, 10, 1])
        cropped = Inference.crop(window, (258, 6))
        assert cropped.shape.as_list() == [None, 258, 6, 1]
        with pytest.raises(ValueError):
            Inference.crop(window, (400, 6))
        with session(tf.compat.v1.get_default_graph()) as sess:
            values = sess.run([normalised, restored, cropped], {placeholder: magnitude, window: padded})
    np.testing.assert_allclose(values[0], np.log1p(magnitude), rtol=1e-6)
    np.testing.assert_allclose(values[1], magnitude, atol=1e-6)
    np.testing.assert_array_equal(values[2], padded[:, 46:304, 2:8])
    np.testing.assert_array_equal(centre_crop(padded, (258, 6)), values[2])  # the tests' numpy twin


def test_a_separator_built_for_inference_has_the_training_graphs_variables():
    # A checkpoint of the training graph restores into the inference graph by name.
    with tf.Graph().as_default():
        model = build_training_graph(small_config(), semi_supervised=True)
        trained = {variable.op.name: variable.shape.as_list() for variable in model.separator_variables()}
    with tf.Graph().as_default() as graph:
        separator = Unet(2, 4, SOURCES)
        input_shape, output_shape = separator.get_padding((16, 8))
        inference = Inference.build_inference(separator, input_shape, reuse=False, name="mixture")
        restored = {
            variable.op.name: variable.shape.as_list()
            for variable in Inference.separator_variables(graph, trainable_only=False)
        }
    assert trained and restored == trained
    assert all(name.startswith(Inference.SCOPE + "/") for name in trained)  # no "separator_solver/" slots
    assert inference.mixture.shape.as_list() == [None, *input_shape, 1]
    assert {name: output.shape.as_list() for name, output in inference.estimates.items()} == {
        name: [None, *output_shape, 1] for name in SOURCES
    }


@contextlib.contextmanager
def supervised_graph_and_batch(seed):
    """``(model, paired batch of 2, initialised session)`` of a new supervised graph."""
    rng = np.random.default_rng(seed)
    with tf.Graph().as_default() as graph:
        model = build_training_graph(small_config(), semi_supervised=False)
        batch = [random_batch(rng, 2, model.input_shape)] + [random_batch(rng, 2, model.output_shape) for _ in SOURCES]
        with session(graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            yield model, batch, sess


def test_validation_loss_equals_the_supervised_loss_for_any_batch_size():
    with supervised_graph_and_batch(4) as (model, batch, sess):
        supervised = sess.run(model.supervised_loss, model.feed_paired(batch))
        validation = sess.run(model.validation_loss, model.feed_validation(batch))
        single = [
            sess.run(model.validation_loss, model.feed_validation([part[i : i + 1] for part in batch]))
            for i in range(2)
        ]
    assert validation == pytest.approx(supervised, rel=1e-5)
    assert np.mean(single) == pytest.approx(supervised, rel=1e-5)


def test_validation_loss_leaves_out_the_frames_past_a_songs_end():
    with supervised_graph_and_batch(5) as (model, batch, sess):
        valid = np.array([model.output_shape[1], 3])
        masked = sess.run(model.validation_loss, model.feed_validation(batch, valid))
        estimates = sess.run(model.inference_outputs, {model.inference_input: batch[0]})
        changed = [part.copy() for part in batch]
        for target in changed[1:]:
            target[1, :, 3:] += 5.0  # what happens past the real frames must not count
        again = sess.run(model.validation_loss, model.feed_validation(changed, valid))
    errors = [(np.log1p(estimates[name]) - np.log1p(target)) ** 2 for name, target in zip(SOURCES, batch[1:])]
    cells = model.output_shape[0] * valid.sum()
    expected = sum((error[0].sum() + error[1, :, :3].sum()) / cells for error in errors)
    assert masked == pytest.approx(expected, rel=1e-4) and again == pytest.approx(masked, rel=1e-6)


def test_the_critics_adam_betas_are_a_setting_with_the_papers_default():
    def critic_beta1(**changes):
        with tf.Graph().as_default() as graph:
            build_training_graph(small_config(**changes), semi_supervised=True)
            powers = [v for v in tf.compat.v1.global_variables() if v.op.name.endswith("beta1_power")]
            with session(graph) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                return {v.op.name.split("/")[0]: float(sess.run(v)) for v in powers}

    default = critic_beta1()
    assert default["critic_voice_solver"] == pytest.approx(0.9) and default["separator_solver"] == pytest.approx(0.9)
    changed = critic_beta1(critic_adam_betas=[0.5, 0.9])
    assert changed["critic_voice_solver"] == pytest.approx(0.5) and changed["separator_solver"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="critic_adam_betas"):
        critic_beta1(critic_adam_betas=[0.5])
