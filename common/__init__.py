"""Helpers every layer may use: the typed model configuration (Config) and the U-Net's shape
arithmetic (UnetShapes), atomic files and logging (Utils), checkpoint folders (Checkpoints), the
numeric precision policy (Precision) and a quiet TensorFlow set-up (TensorFlowSetup: start-up log
lines, sessions without a CUDA probe on machines without a GPU)."""
