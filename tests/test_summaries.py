"""TensorBoard summaries (experiment/Summaries.py, experiment/SpectrogramImages.py): the pictures'
colour scale and orientation, the grouped tags, and the validation SDR read back from event files."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import Input
from experiment import SpectrogramImages as Images
from experiment import Summaries

tf.compat.v1.disable_eager_execution()

REFERENCE = 100.0
TABLE = Images.colour_table()


def test_colour_table_runs_from_dark_to_bright():
    assert TABLE.shape == (256, 3) and TABLE.dtype == np.uint8
    brightness = TABLE.astype(int).sum(axis=1)
    assert brightness[0] < 30 and brightness[-1] > 600
    assert np.all(np.diff(brightness) >= -3)  # perceptual maps grow in lightness


def test_a_tone_in_the_lowest_bin_lights_the_bottom_rows():
    magnitudes = np.zeros((32, 8))
    magnitudes[0] = REFERENCE  # 0 dB in the lowest bin, silence elsewhere
    image = Images.render_panel(magnitudes, REFERENCE)
    rows, columns = Images.scale_factors(magnitudes.shape)
    assert image.dtype == np.uint8 and image.shape == (32 * rows, 8 * columns, 3)
    assert (rows, columns) == (8, 32)
    np.testing.assert_array_equal(image[-rows:], np.broadcast_to(TABLE[255], (rows, 8 * columns, 3)))
    np.testing.assert_array_equal(image[:-rows], np.broadcast_to(TABLE[0], (31 * rows, 8 * columns, 3)))


def test_a_full_scale_sine_peaks_at_0_db_in_its_own_rows():
    num_fft, sample_rate, bin_index = 64, 8192, 5
    time = np.arange(sample_rate // 4) / sample_rate
    sine = np.sin(2 * np.pi * bin_index * sample_rate / num_fft * time)
    magnitudes = np.abs(Input.stft(sine, num_fft, num_fft // 4))
    reference = Images.reference_magnitude(num_fft)
    assert abs(float(Images.to_db(magnitudes[bin_index, 4:-4], reference).mean())) < 0.1
    image = Images.render_panel(magnitudes, reference)
    rows = Images.scale_factors(magnitudes.shape)[0]
    brightest = image.astype(int).sum(axis=2).mean(axis=1).argmax()
    assert brightest // rows == magnitudes.shape[0] - 1 - bin_index


def test_the_db_range_is_fixed_and_clips_at_both_ends():
    levels_db = np.array([[20.0, 0.0, -40.0, -80.0, -120.0]])
    magnitudes = REFERENCE * 10 ** (levels_db / 20)
    magnitudes = np.concatenate([magnitudes, [[0.0, -1.0, 0.0, 0.0, 0.0]]])  # silence and a negative estimate
    np.testing.assert_allclose(
        Images.to_db(magnitudes, REFERENCE), [[0, 0, -40, -80, -80], [-80, -80, -80, -80, -80]], atol=1e-4
    )
    image = Images.render_panel(magnitudes, REFERENCE)
    rows, columns = Images.scale_factors(magnitudes.shape)
    top_row = image[-1, ::columns]  # bin 0 is drawn at the bottom
    np.testing.assert_array_equal(top_row, TABLE[[255, 255, 128, 0, 0]])
    # The same level keeps its colour whatever else the picture holds (no per-picture normalisation).
    quiet = Images.render_panel(magnitudes / 1000, REFERENCE)  # 60 dB down: +20 dB becomes -40 dB
    np.testing.assert_array_equal(quiet[-1, 0], top_row[2])


def test_picture_stacks_estimate_over_true_with_a_white_line_and_the_colour_scales():
    rng = np.random.default_rng(0)
    estimate, true = rng.random((258, 66)) * REFERENCE, rng.random((258, 66)) * REFERENCE
    image = Images.picture([estimate, true], REFERENCE)
    width, height = 66 * 4, 258
    assert image.dtype == np.uint8
    assert image.shape == (2 * height + Images.SEPARATOR, width + Images.SEPARATOR + Images.SCALE_WIDTH, 3)
    np.testing.assert_array_equal(image[:height, :width], Images.render_panel(estimate, REFERENCE))
    second = height + Images.SEPARATOR
    np.testing.assert_array_equal(image[second:, :width], Images.render_panel(true, REFERENCE))
    assert np.all(image[height:second] == 255) and np.all(image[:, width : width + Images.SEPARATOR] == 255)
    for top in (0, second):  # each panel's own colour scale: 0 dB at its top, -80 dB at its bottom
        scale = image[top : top + height, -Images.SCALE_WIDTH :]
        np.testing.assert_array_equal(scale[0, 0], TABLE[255])
        np.testing.assert_array_equal(scale[-1, -1], TABLE[0])
    assert Images.picture([estimate], REFERENCE).shape[1] == image.shape[1]  # one width for every picture
    with pytest.raises(ValueError, match="differ in shape"):
        Images.picture([estimate, true[:, :10]], REFERENCE)


def test_png_encoding_round_trips():
    image = Images.picture([np.linspace(0, REFERENCE, 40).reshape(8, 5)], REFERENCE)
    decoded = np.asarray(Image.open(io.BytesIO(Images.encode_png(image))))
    np.testing.assert_array_equal(decoded, image)
    with pytest.raises(ValueError, match="uint8"):
        Images.encode_png(image.astype(np.float32))


def test_scalar_tags_are_grouped():
    assert Summaries.scalar_tag("supervised_loss") == "loss/supervised"
    assert Summaries.scalar_tag("L_u") == "loss/adversarial"
    assert Summaries.scalar_tag("separator_loss") == "loss/total"
    assert Summaries.scalar_tag("wasserstein/voice") == "critics/wasserstein_voice"
    assert Summaries.scalar_tag("critic_loss/accompaniment") == "critics/loss_accompaniment"
    assert Summaries.scalar_tag("gradient_penalty/voice") == "critics/gradient_penalty_voice"
    fixed = [
        Summaries.SEPARATOR_LEARNING_RATE,
        Summaries.CRITICS_LEARNING_RATE,
        Summaries.VALID_LOSS,
        Summaries.BEST_VALID_LOSS,
        Summaries.DATA_WAIT_FRACTION,
        Summaries.TEST_LOSS,
        Summaries.sdr_tag("voice"),
        *Summaries.SEPARATOR_TAGS.values(),
    ]
    assert all(tag.split("/")[0] in Summaries.GROUPS for tag in fixed)
    with pytest.raises(KeyError, match="no TensorBoard tag"):
        Summaries.scalar_tag("valid_loss")


def events(folder):
    """``{tag: [summary values]}`` of every event file in ``folder``."""
    found = {}
    for name in os.listdir(folder):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                found.setdefault(value.tag, []).append(value)
    return found


def write_and_read(tmp_path, summary):
    writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
    writer.add_summary(summary, 3)
    writer.close()
    return events(tmp_path)


def clips(rng, voice_estimate=None, voice_true=None, seconds=0.5, sr=8192):
    accompaniment = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)
    voice = 0.2 * rng.standard_normal(accompaniment.size)
    voice = voice if voice_true is None else voice_true
    noise = 1e-3 * rng.standard_normal((2, accompaniment.size))
    return {
        "mixture": accompaniment + voice,
        "accompaniment/true": accompaniment,
        "accompaniment/estimate": accompaniment + noise[0],
        "voice/true": voice,
        "voice/estimate": voice + noise[1] if voice_estimate is None else voice_estimate,
    }


def test_validation_sdr_is_written_for_a_close_estimate(tmp_path):
    values = Summaries.validation_sdr(clips(np.random.default_rng(0)), ("accompaniment", "voice"), 8192)
    read = write_and_read(tmp_path, Summaries.scalar_summary(values))
    assert set(read) == {"validation/sdr_accompaniment", "validation/sdr_voice"}
    assert all(entries[0].simple_value > 30 for entries in read.values())


def test_no_validation_sdr_for_a_silent_estimate_or_a_silent_true_source(tmp_path, caplog):
    rng = np.random.default_rng(1)
    silent_estimate = clips(rng, voice_estimate=np.zeros(4096))
    with caplog.at_level("DEBUG", logger="Training"):
        values = Summaries.validation_sdr(silent_estimate, ("accompaniment", "voice"), 8192)
    assert "No validation SDR for voice: silent estimate" in caplog.text
    assert set(write_and_read(tmp_path, Summaries.scalar_summary(values))) == {"validation/sdr_accompaniment"}
    silent_true = clips(rng, voice_true=np.zeros(4096))
    assert set(Summaries.validation_sdr(silent_true, ("accompaniment", "voice"), 8192)) == {
        "validation/sdr_accompaniment"
    }


def test_spectrogram_and_audio_summaries_use_one_word_for_the_real_sources(tmp_path):
    rng = np.random.default_rng(2)
    panels = {"spectrogram/voice_estimate_over_true": [rng.random((16, 8)), rng.random((16, 8))]}
    summary = Summaries.spectrogram_summary(panels, num_fft=30)
    audio = Summaries.audio_summary({"voice/true": np.zeros(100), "voice/estimate": np.zeros(100)}, 8192)
    summary.value.extend(audio.value)
    read = write_and_read(tmp_path, summary)
    assert set(read) == {"spectrogram/voice_estimate_over_true", "audio/voice_true", "audio/voice_estimate"}
    image = read["spectrogram/voice_estimate_over_true"][0].image
    decoded = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
    assert decoded.shape == (image.height, image.width, 3) == (2 * 16 * 16 + 2, 8 * 32 + 2 + 8, 3)
