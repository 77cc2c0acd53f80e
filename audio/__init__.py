"""The signal layer's parts beside ``Input.py`` and ``Sample.py``: spectrograms (Spectrogram)."""
