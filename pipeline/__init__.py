"""The input pipeline: reader processes that cut random sections of songs, the model-rate and
spectrogram caches they read from, and the batch generators that feed training."""
