"""The evaluation layer: separating whole songs with a trained separator, BSS Eval metrics,
result files and the comparison of two models. ``Evaluate.py`` at the top level runs it."""
