"""Reference numbers of the signal chain, the networks, the batch drawing and the metrics.

``tests/test_regression.py`` recomputes these values and compares them with the ones stored in
``tests/data/regression.npz``, so that a silent numeric change (STFT, frequency padding,
resampling, U-Net, critics, loss terms, batch drawing, BSS Eval) fails a test. Everything is
computed from inputs made here with seeded numpy generators; TensorFlow's weights are set from
numpy too, so the values do not depend on TensorFlow's initialisers.

Regenerate the stored file (only after a change that is meant to alter the numbers, and say
so in the commit) with::

    .venv/bin/python tests/regression_data.py
"""

import os
import sys
import tempfile

import numpy as np
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

REFERENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "regression.npz")
SR = 8192
NETWORK_CONFIG = dict(
    sources=["accompaniment", "voice"],
    batch_size=2,
    alpha=0.001,
    beta=0.001,
    lam=10,
    init_disc_lr=5e-5,
    init_sup_sep_lr=5e-5,
    init_unsup_sep_lr=5e-5,
    num_frames=8,
    num_freqs=32,
    num_layers=2,
    num_initial_filters=4,
    critic_initial_filters=4,
    critic_dense_units=8,
)


def chirp_with_noise(seconds, sample_rate=SR, seed=0):
    """A chirp plus a little noise, float32 [samples]: every frame differs from the others."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    chirp = 0.4 * np.sin(2 * np.pi * (150 * t + 900 * t**2))
    return (chirp + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def _normalised(magnitude):
    """The network's normalisation (Models/Inference.py) of numpy magnitudes, run in TensorFlow."""
    import tensorflow as tf

    from Models import Inference

    with tf.Graph().as_default():
        normalised = Inference.normalise(tf.constant(magnitude))
        with tf.compat.v1.Session() as session:
            return session.run(normalised)


def signal_values():
    """STFT magnitudes and phases, frequency padding, the inverse STFT, the network's
    normalisation and a resampled read."""
    import Input

    audio = chirp_with_noise(1.5)
    spectrogram = Input.stft(audio, 512, 256)
    magnitude = np.abs(spectrogram).astype(np.float32)
    values = {
        "signal/stft_magnitude": magnitude,
        "signal/padded": Input.pad_freqs(magnitude, 350),
        "signal/istft": Input.istft(magnitude, np.angle(spectrogram), 256, len(audio)),
        "signal/normalised": _normalised(magnitude),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "stereo_44100.wav")
        stereo = np.stack([chirp_with_noise(0.5, 44100, seed=1), chirp_with_noise(0.5, 44100, seed=2)], axis=1)
        soundfile.write(path, stereo, 44100, subtype="FLOAT")
        values["signal/resampled_section"] = Input.read_audio(
            path, SR, mono_downmix=True, offset=0.1, duration=0.25, padding_duration=0.05
        )
    return values


def _set_weights(session, variables, rng, critic_gain=2.0):
    """Assign every variable a seeded value: kernels ~ N(0, gain^2 / fan_in) and biases
    ~ N(0.05, 0.01^2), so that no output is a dead ReLU; the critics' larger gain puts their
    gradient norms above 1, where the one-sided gradient penalty is not zero."""
    for variable in sorted(variables, key=lambda v: v.op.name):
        shape = variable.shape.as_list()
        if len(shape) > 1:
            gain = critic_gain if variable.op.name.startswith("critic") else 1.5
            value = rng.normal(0.0, gain / np.sqrt(np.prod(shape[:-1])), shape)
        else:
            value = rng.normal(0.05, 0.01, shape)
        variable.load(value.astype(np.float32), session)


def network_values():
    """The seeded U-Net's outputs and every loss term of the semi-supervised graph on fixed batches."""
    import tensorflow as tf

    from common.Config import ModelConfig
    from Models.TrainingGraph import build_training_graph

    tf.compat.v1.disable_eager_execution()
    rng = np.random.default_rng(11)
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(5)
        graph = build_training_graph(ModelConfig.from_dict(NETWORK_CONFIG), semi_supervised=True, seed=5)
        batch = NETWORK_CONFIG["batch_size"]

        def magnitudes(shape):
            return rng.uniform(0.0, 2.0, size=(batch,) + tuple(shape) + (1,)).astype(np.float32)

        paired = [magnitudes(graph.input_shape)] + [magnitudes(graph.output_shape) for _ in graph.sources]
        feed = graph.feed_paired(paired)
        feed.update(
            graph.feed_unpaired(magnitudes(graph.input_shape), [magnitudes(graph.output_shape) for _ in graph.sources])
        )
        fetches = {
            "supervised_loss": graph.supervised_loss,
            "L_u": graph.L_u,
            "additive_penalty": graph.additive_penalty,
            "unsupervised_loss": graph.unsupervised_loss,
            "separator_loss": graph.separator_loss,
        }
        for name in graph.sources:
            fetches[f"separator_output/{name}"] = graph.separator_outputs[name]
            fetches[f"unpaired_output/{name}"] = graph.unpaired_separator_outputs[name]
            fetches[f"critic_real_scores/{name}"] = graph.critic_real_scores[name]
            fetches[f"critic_fake_scores/{name}"] = graph.critic_fake_scores[name]
            fetches[f"wasserstein/{name}"] = graph.wasserstein[name]
            fetches[f"gradient_penalty/{name}"] = graph.gradient_penalty[name]
            fetches[f"inference_output/{name}"] = graph.inference_outputs[name]
        feed[graph.inference_input] = paired[0][:1]
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            _set_weights(session, tf.compat.v1.trainable_variables(), rng)
            values = session.run(fetches, feed)
    return {f"network/{name}": np.asarray(value, np.float32) for name, value in values.items()}


def _write_song(folder, name, seconds, seed):
    """(mixture, accompaniment, voice) Samples of 8192 Hz float WAVs, mixture = sum of sources."""
    from Sample import Sample

    accompaniment = chirp_with_noise(seconds, seed=seed)
    voice = 0.5 * chirp_with_noise(seconds, seed=seed + 100)[::-1]
    samples = []
    for role, audio in (("mix", accompaniment + voice), ("acc", accompaniment), ("voice", voice)):
        path = os.path.join(folder, f"{name}_{role}.wav")
        soundfile.write(path, audio, SR, subtype="FLOAT")
        samples.append(Sample.from_path(path, database="regression", song=name))
    return tuple(samples)


def batch_values():
    """Seeded batches of the paired and the single-source generator, reading in this process."""
    from pipeline.BatchGenerators import PairedBatchGenerator, SingleSourceBatchGenerator

    settings = dict(
        batch_size=3,
        expected_sr=SR,
        num_fft=256,
        num_hop=128,
        duration=1.0,
        cache_size=3,
        num_workers=0,
        min_replacement_rate=2,
    )
    values = {}
    with tempfile.TemporaryDirectory() as folder:
        songs = [_write_song(folder, f"song{index}", seconds, index) for index, seconds in enumerate((1.2, 2.0, 0.7))]
        with PairedBatchGenerator(songs, (130, 20), (129, 10), seed=7, **settings) as generator:
            for index in range(3):
                for part, array in zip(("mixture", "accompaniment", "voice"), generator.get_batch()):
                    values[f"batches/paired_{index}/{part}"] = array
        voices = [song[2] for song in songs]
        with SingleSourceBatchGenerator(
            voices, (129, 10), context_frames=3, random_gain=(0.2, 1.2), seed=8, **settings
        ) as generator:
            for index in range(2):
                values[f"batches/single_{index}"] = generator.get_batch()
    return values


def metric_values():
    """BSS Eval and the scale-optimal SNR of a fixed estimate: [sources, metrics] in Metrics.METRICS order."""
    from evaluation import Metrics

    rng = np.random.default_rng(3)
    references = np.stack([chirp_with_noise(2.0, seed=20), 0.6 * chirp_with_noise(2.0, seed=21)[::-1]])
    mixture = references.sum(axis=0)
    estimates = 0.8 * references + 0.1 * references[::-1] + 0.02 * rng.standard_normal(references.shape)
    rows = Metrics.compute_song_metrics(references, estimates.astype(np.float32), mixture)
    return {"metrics/values": np.array([[row[name] for name in Metrics.METRICS] for row in rows], np.float64)}


def compute_all():
    """Every reference value, as ``{name: array}``."""
    values = {}
    for part in (signal_values, network_values, batch_values, metric_values):
        values.update(part())
    return values


def main():
    os.makedirs(os.path.dirname(REFERENCE_FILE), exist_ok=True)
    values = compute_all()
    np.savez_compressed(REFERENCE_FILE, **values)
    size = os.path.getsize(REFERENCE_FILE)
    print(f"wrote {len(values)} arrays ({size / 1024:.0f} KiB) to {REFERENCE_FILE}")


if __name__ == "__main__":
    main()
