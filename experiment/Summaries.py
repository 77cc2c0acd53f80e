"""TensorBoard summaries: the grouped tags, scalar ops, spectrogram pictures, audio and the validation SDR.

Every tag is ``group/name``, so TensorBoard shows one section per group (docs/training.md,
"TensorBoard"):

- ``loss/``: the separator's terms (``supervised``, ``adversarial`` = the paper's L_u,
  ``additive_penalty``, ``unsupervised`` = alpha L_u + beta P, ``total``) and its ``learning_rate``;
- ``critics/``: per source ``loss_<source>``, ``wasserstein_<source>`` and
  ``gradient_penalty_<source>``, and the critics' ``learning_rate``;
- ``validation/``: ``loss``, ``best_loss`` and ``sdr_<source>`` after every epoch;
- ``pipeline/data_wait_fraction`` and ``test/loss``;
- images ``spectrogram/...`` (SpectrogramImages.py) and audio ``audio/...``, with "true" for
  the real sources in both.

Scalars are graph ops merged into one op, fetched with the training step; the raw summary ops
keep tags exactly as given (tf.compat.v1.summary.scalar would derive them from op names, which
TensorFlow renames, ``L_u`` -> ``L_u_1``). Everything computed in numpy (critic values, the
validation numbers, pictures, audio) is written as ready-made ``Summary`` protocol buffers.
"""

import io
import logging
import math
from typing import TYPE_CHECKING, Dict, Mapping, Sequence, Tuple, Union

import numpy as np
import soundfile
import tensorflow as tf

from evaluation import Metrics
from experiment import SpectrogramImages
from Models import Inference

if TYPE_CHECKING:
    from Models.TrainingGraph import TrainingGraph

LOGGER = logging.getLogger("Training")

SEPARATOR_TAGS = {  # TrainingGraph.separator_scalars names -> tags
    "supervised_loss": "loss/supervised",
    "L_u": "loss/adversarial",
    "additive_penalty": "loss/additive_penalty",
    "unsupervised_loss": "loss/unsupervised",
    "separator_loss": "loss/total",
}
CRITIC_TERMS = {"critic_loss": "loss", "wasserstein": "wasserstein", "gradient_penalty": "gradient_penalty"}
SEPARATOR_LEARNING_RATE = "loss/learning_rate"
CRITICS_LEARNING_RATE = "critics/learning_rate"
VALID_LOSS, BEST_VALID_LOSS = "validation/loss", "validation/best_loss"
DATA_WAIT_FRACTION = "pipeline/data_wait_fraction"
TEST_LOSS = "test/loss"
GROUPS = ("loss", "critics", "validation", "pipeline", "test")  # of the scalars
TRUE = "true"  # the word for the real sources in picture and audio tags


def sdr_tag(source: str) -> str:
    """The tag of ``source``'s validation SDR, ``validation/sdr_<source>``."""
    return f"validation/sdr_{source}"


def scalar_tag(name: str) -> str:
    """The tag of a ``TrainingGraph.separator_scalars`` or ``critic_scalars`` name.

    ``"supervised_loss"`` -> ``"loss/supervised"``, ``"wasserstein/voice"`` -> ``"critics/wasserstein_voice"``.
    """
    if name in SEPARATOR_TAGS:
        return SEPARATOR_TAGS[name]
    term, _, source = name.partition("/")
    if term in CRITIC_TERMS and source:
        return f"critics/{CRITIC_TERMS[term]}_{source}"
    raise KeyError(f"no TensorBoard tag for the scalar {name!r}")


def scalar_summaries(scalars: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """One summary op for a dict ``tag -> scalar tensor``."""
    return tf.compat.v1.summary.merge(
        [tf.raw_ops.ScalarSummary(tags=tag, values=value) for tag, value in sorted(scalars.items())]
    )


def training_scalar_summaries(graph: "TrainingGraph") -> tf.Tensor:
    """The merged op of the separator's scalars and the learning rates (needs only the separator step's feed)."""
    scalars = {scalar_tag(name): tensor for name, tensor in graph.separator_scalars.items()}
    scalars[SEPARATOR_LEARNING_RATE] = graph.unsup_sep_lr if graph.semi_supervised else graph.sup_sep_lr
    if graph.semi_supervised:
        scalars[CRITICS_LEARNING_RATE] = graph.disc_lr
    return scalar_summaries(scalars)


def scalar_summary(values: Mapping[str, Union[float, np.floating]]) -> tf.compat.v1.Summary:
    """A ``Summary`` protocol buffer for a dict ``tag -> float`` computed outside the graph."""
    return tf.compat.v1.Summary(
        value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in sorted(values.items())]
    )


def critic_scalar_summary(values: Mapping[str, float]) -> tf.compat.v1.Summary:
    """:func:`scalar_summary` of fetched ``TrainingGraph.critic_scalars`` (names mapped by :func:`scalar_tag`)."""
    return scalar_summary({scalar_tag(name): value for name, value in values.items()})


def spectrogram_tensors(graph: "TrainingGraph") -> Dict[str, Tuple[tf.Tensor, ...]]:
    """What the pictures show: ``tag -> panels``, each panel linear magnitudes ``[F_out, T_out]``.

    The first example of the step's batches: the paired mixture (cropped to the output), per
    source its estimate above the true source, and (semi-supervised) the estimate from the
    unpaired mixture, which has no true source.
    """

    def first(batch):
        return batch[0, :, :, 0]

    pictures = {"spectrogram/mixture": (first(Inference.crop(graph.mixture, graph.output_shape)),)}
    for name in graph.sources:
        pictures[f"spectrogram/{name}_estimate_over_{TRUE}"] = (
            first(Inference.denormalise(graph.separator_outputs[name])),
            first(graph.source_targets[name]),
        )
        if graph.semi_supervised:
            pictures[f"spectrogram/{name}_unpaired_estimate"] = (
                first(Inference.denormalise(graph.unpaired_separator_outputs[name])),
            )
    return pictures


def spectrogram_summary(pictures: Mapping[str, Sequence[np.ndarray]], num_fft: int) -> tf.compat.v1.Summary:
    """A ``Summary`` of PNG pictures, one per tag (:func:`SpectrogramImages.picture`).

    Args:
        pictures: ``tag -> panels``, linear magnitudes ``[freqs, frames]`` (the fetched
            :func:`spectrogram_tensors`).
        num_fft: the STFT size, which sets 0 dB (:func:`SpectrogramImages.reference_magnitude`).
    """
    reference = SpectrogramImages.reference_magnitude(num_fft)
    values = []
    for tag, panels in sorted(pictures.items()):
        image = SpectrogramImages.picture(panels, reference)
        encoded = SpectrogramImages.encode_png(image)
        values.append(
            tf.compat.v1.Summary.Value(
                tag=tag,
                image=tf.compat.v1.Summary.Image(
                    height=image.shape[0], width=image.shape[1], colorspace=3, encoded_image_string=encoded
                ),
            )
        )
    return tf.compat.v1.Summary(value=values)


def audio_tag(clip: str) -> str:
    """The tag of a validation clip: ``"voice/estimate"`` -> ``"audio/voice_estimate"``."""
    return "audio/" + clip.replace("/", "_")


def audio_summary(clips: Mapping[str, np.ndarray], sample_rate: int) -> tf.compat.v1.Summary:
    """A ``Summary`` protocol buffer holding audio clips as 16-bit WAV, tagged by :func:`audio_tag`.

    Args:
        clips: dict ``name -> mono audio [samples]`` (float, nominally in [-1, 1]; clipped),
            names as ``TrainingData.validation_clips`` gives them.
        sample_rate: sampling rate of every clip in Hz.
    """
    values = []
    for name, audio in sorted(clips.items()):
        audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
        buffer = io.BytesIO()
        soundfile.write(buffer, audio, int(sample_rate), subtype="PCM_16", format="WAV")
        values.append(
            tf.compat.v1.Summary.Value(
                tag=audio_tag(name),
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


def validation_sdr(clips: Mapping[str, np.ndarray], sources: Sequence[str], sample_rate: int) -> Dict[str, float]:
    """BSS Eval v3 SDR (dB) of each source's estimate in the validation clips, ``sdr_tag(source) -> SDR``.

    Args:
        clips: ``"mixture"``, ``"<source>/estimate"`` and ``"<source>/true"`` -> mono audio
            ``[samples]`` at ``sample_rate`` Hz (``TrainingData.validation_clips``).
        sources: the model's sources.

    The metric and its silence rule are evaluation/Metrics.py's: a source whose true clip is
    silent or whose estimate is all zeros has no SDR, and is left out (logged at debug level)
    rather than written as a number.
    """
    length = min(len(clips[key]) for key in clips)
    references = np.stack([np.asarray(clips[f"{name}/{TRUE}"])[:length] for name in sources])
    estimates = np.stack([np.asarray(clips[f"{name}/estimate"])[:length] for name in sources])
    # An all-zero mixture leaves the normalised metrics (NSDR, ...) undefined, by Metrics' rule, and so
    # spares their second BSS Eval pass: half the cost, and the SDR does not depend on the mixture.
    results = Metrics.compute_song_metrics(
        references, estimates, np.zeros(length), versions=("v3",), sample_rate=sample_rate
    )
    values = {}
    for name, result in zip(sources, results):
        if not math.isfinite(result["SDR"]):
            LOGGER.debug("No validation SDR for %s: %s", name, "; ".join(result["undefined_reason"]) or "undefined")
        else:
            values[sdr_tag(name)] = result["SDR"]
    return values
