"""Analyses of trained models: the attention scores of the paper's Fig. 6 and 8 (:mod:`.attention`).

Importing this package does not import torch; ``mashvlm analyze attention`` is the command line
(docs/analysis.md).
"""
