"""TrainingData.py: the batch generators of a phase, as the reference configures them."""

import numpy as np
import pytest

from experiment.TrainingData import TrainingData

from conftest import centre_crop
from small_config import small_config
from songs import chirp_song

TINY = dict(batch_size=8, num_freqs=128, num_fft=256, num_hop=128, cache_size=8, min_replacement_rate=4)


@pytest.mark.parametrize("scale_mixtures", [True, False])
def test_unpaired_mixtures_and_real_sources_get_the_same_random_gain_so_level_tells_nothing(tmp_path, scale_mixtures):
    # An ideal separator's voice estimate on an unpaired mixture is the mixture's voice at the
    # mixture's gain. Here the "mixtures" and the "real voices" are the same files, so the
    # estimate's level is the mixture batch's level: a critic looking at loudness alone must
    # see the same distribution on both sides.
    songs = [chirp_song(tmp_path, f"song{index}", 2.0) for index in range(3)]
    files = [song[0] for song in songs]
    dataset = {"train_sup": songs, "train_unsup": [files, files, files]}
    config = small_config(**TINY, scale_unpaired_mixtures=scale_mixtures)
    with TrainingData(dataset).batch_generators(config, semi_supervised=True, seed=[1, 0]) as (_, mixtures, sources):
        output_shape = sources[1].shape
        estimate_levels, real_levels = [], []
        for _ in range(40):
            estimates = centre_crop(mixtures.get_batch(), output_shape)  # the estimate's span of the mixture
            estimate_levels.append(estimates.mean(axis=(1, 2, 3)))
            real_levels.append(sources[1].get_batch().mean(axis=(1, 2, 3)))
    estimate_levels, real_levels = np.concatenate(estimate_levels), np.concatenate(real_levels)
    # Both sides are scaled by gains uniform in [0.2, 1.2]: equal means (within sampling error of
    # 320 excerpts), where a mixture side left at gain 1 (the switch off) is 1 / 0.7 = 1.43 times louder.
    expected = 1.0 if scale_mixtures else 1 / 0.7
    assert abs(estimate_levels.mean() / real_levels.mean() / expected - 1) < 0.1
    assert abs(np.median(estimate_levels) / np.median(real_levels) / expected - 1) < 0.15
