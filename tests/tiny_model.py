"""A tiny saved U-Net, test sources and songs shared by the tests of Separation, Evaluate and Metrics."""

import math
import os

import numpy as np
import tensorflow as tf

import Input
from common import Checkpoints
from evaluation import Metrics
from Models import Inference
from Models.Unet import Unet
from Sample import Sample

from conftest import centre_crop, write_wav
from small_config import small_config

tf.compat.v1.disable_eager_execution()

SR = 8192
TINY_CONFIG = small_config(expected_sr=SR, num_fft=128, num_hop=64, num_frames=16, num_freqs=64)


def identity_predict(output_shape):
    """A separator that returns the mixture (centre crop) as voice and silence as accompaniment."""

    def predict(batch):
        voice = centre_crop(batch, output_shape)
        return {"accompaniment": np.zeros_like(voice), "voice": voice}

    return predict


def signals(seconds=2.0, seed=0):
    """Two independent test sources [2, samples] at SR: a chord-like tone and filtered noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t + 1.0)
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, mode="same") * 0.2
    return np.stack([tone, noise])


def make_song(folder, name, sample_rate, seed, silent_voice=False):
    references = signals(1.5, seed)
    if silent_voice:
        references[1] = 0.0
    if sample_rate != SR:
        references = np.stack([Input._resample(np.asarray(ref, np.float32), SR, sample_rate) for ref in references])
    paths = [
        write_wav(os.path.join(folder, name, file), audio, sample_rate)
        for file, audio in (
            ("mix.wav", references.sum(axis=0)),
            ("acc.wav", references[0]),
            ("voice.wav", references[1]),
        )
    ]
    return tuple(Sample.from_path(path, database="DB" if seed % 2 else "Other", song=name) for path in paths)


def save_tiny_model(folder):
    """Save a tiny random U-Net into ``folder`` as Training.py does.

    Returns:
        ``(folder, batch, outputs)``: the folder, a fixed input batch and the network's outputs for it.
    """
    input_shape = TINY_CONFIG.network.input_shape
    batch = np.random.default_rng(0).random((3,) + tuple(input_shape) + (1,)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(0)
        inference = Inference.build_inference(
            Unet(2, 4, TINY_CONFIG.network.sources), input_shape, reuse=False, name="mixture"
        )
        mixture, outputs = inference.mixture, inference.estimates
        with tf.compat.v1.variable_scope("critic_voice"):  # not restored by Evaluate
            tf.compat.v1.get_variable("unused", [2])
        # Positive output biases keep the random ReLU outputs from being silent.
        biases = [
            variable
            for variable in tf.compat.v1.global_variables()
            if "output_" in variable.name and "bias" in variable.name
        ]
        raise_biases = tf.group(*[variable.assign(tf.fill(variable.shape, 0.05)) for variable in biases])
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(raise_biases)
            expected = session.run(outputs, {mixture: batch})
            tf.compat.v1.train.Saver().save(session, os.path.join(folder, "model"), global_step=7)
    Checkpoints.write_model_config(folder, TINY_CONFIG)
    return folder, batch, expected


def fake_row(model, database, song, source, sdr=5.0):
    row = {"model": model, "database": database, "song": song, "source": source, "seconds": 30.0}
    row.update({metric: sdr + index for index, metric in enumerate(Metrics.METRICS)})
    undefined = [metric for metric in Metrics.METRICS if math.isnan(row[metric])]
    row.update(
        undefined=bool(undefined),
        undefined_metrics=";".join(undefined),
        undefined_reason="silent reference" if undefined else "",
    )
    return row
