"""Networks of the method: the U-Net separator, the Wasserstein critics, the training graph."""
