"""Helpers every layer may use: atomic files and logging (Utils), checkpoint folders
(Checkpoints) and the numeric precision policy (Precision)."""
