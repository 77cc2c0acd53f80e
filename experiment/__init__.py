"""The experiment layer: the trainer of one phase (Trainer), both phases and their evaluation
(Experiment), the settings beside the model configuration (Settings), the data a run trains on
(TrainingData) and TensorBoard summaries. ``Training.py`` at the top level is the sacred
experiment over it."""
