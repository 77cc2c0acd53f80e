"""TensorBoard summaries: scalar and spectrogram-image ops for the graph, audio from numpy.

Scalars and images are graph ops merged into one op per phase so one ``session.run`` call
fetches them with the training step. Audio clips and the validation loss are computed in
numpy after an epoch, so they are written as ready-made ``Summary`` protocol buffers.
"""

import io
from typing import Mapping, Union

import numpy as np
import soundfile
import tensorflow as tf

# The raw summary ops keep tags exactly as given; tf.compat.v1.summary.scalar would derive
# them from op names, which TensorFlow renames (``L_u`` -> ``L_u_1``) when an op of that name exists.


def scalar_summaries(scalars: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """One summary op for a dict ``tag -> scalar tensor``."""
    return tf.compat.v1.summary.merge(
        [tf.raw_ops.ScalarSummary(tags=tag, values=value) for tag, value in sorted(scalars.items())]
    )


def spectrogram_image_summaries(spectrograms: Mapping[str, tf.Tensor], max_outputs: int = 1) -> tf.Tensor:
    """Image summaries of log-normalised magnitude spectrograms.

    Args:
        spectrograms: dict ``tag -> tensor [batch, freq, frames, 1]`` (log1p magnitudes).
        max_outputs: number of batch items shown per tag.

    Returns:
        One merged summary op. Each image is scaled to [0, 1] on its own and flipped so
        low frequencies are at the bottom, as spectrograms are usually drawn.
    """
    ops = []
    for tag, spectrogram in sorted(spectrograms.items()):
        image = tf.reverse(spectrogram[:max_outputs], axis=[1])
        peak = tf.reduce_max(image, axis=[1, 2, 3], keepdims=True)
        ops.append(tf.raw_ops.ImageSummary(tag=tag, tensor=image / tf.maximum(peak, 1e-8), max_images=max_outputs))
    return tf.compat.v1.summary.merge(ops)


def scalar_summary(values: Mapping[str, Union[float, np.floating]]) -> tf.compat.v1.Summary:
    """A ``Summary`` protocol buffer for a dict ``tag -> float`` computed outside the graph."""
    return tf.compat.v1.Summary(
        value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in sorted(values.items())]
    )


def audio_summary(clips: Mapping[str, np.ndarray], sample_rate: int) -> tf.compat.v1.Summary:
    """A ``Summary`` protocol buffer holding audio clips as 16-bit WAV.

    Args:
        clips: dict ``tag -> mono audio [samples]`` (float, nominally in [-1, 1]; clipped).
        sample_rate: sampling rate of every clip in Hz.
    """
    values = []
    for tag, audio in sorted(clips.items()):
        audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        buffer = io.BytesIO()
        soundfile.write(buffer, audio, int(sample_rate), subtype="PCM_16", format="WAV")
        values.append(
            tf.compat.v1.Summary.Value(
                tag=tag,
                audio=tf.compat.v1.Summary.Audio(
                    sample_rate=float(sample_rate),
                    num_channels=1,
                    length_frames=len(audio),
                    encoded_audio_string=buffer.getvalue(),
                    content_type="audio/wav",
                ),
            )
        )
    return tf.compat.v1.Summary(value=values)
