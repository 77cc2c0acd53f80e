"""One small model configuration for the tests: the typed defaults (common/Config.py) with a
2-level U-Net of 16 x 8 outputs on 16 frequency bins, batches of 2, and readers that work in
the test's own process. Tests change what they need with keyword overrides."""

from common.Config import ModelConfig

SMALL = dict(
    batch_size=2,
    num_frames=8,
    num_freqs=16,
    num_fft=30,
    num_hop=15,
    num_layers=2,
    num_initial_filters=4,
    critic_initial_filters=4,
    critic_dense_units=8,
    epoch_it=2,
    num_disc=1,
    cache_size=4,
    num_workers=0,
    duration=1.0,
    min_replacement_rate=1,
)


def small_config(**overrides) -> ModelConfig:
    """The small configuration with ``overrides`` (flat model_config keys), checked as any other."""
    return ModelConfig.from_dict(dict(SMALL, **overrides))
