"""The experiment layer: what a training run does around the networks (its data set-up,
TensorBoard summaries). ``Training.py`` at the top level is the sacred experiment over it."""
