"""Helpers every layer may use: the typed model configuration (Config) and the U-Net's shape
arithmetic (UnetShapes), atomic files and logging (Utils), checkpoint folders (Checkpoints) and
the numeric precision policy (Precision)."""
