"""Evaluation protocols that train and score several models."""

from tfiqa.protocols.lodo import PRIORS, format_table, run_lodo

__all__ = ["PRIORS", "format_table", "run_lodo"]
