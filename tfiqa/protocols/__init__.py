"""Evaluation protocols that train and score several models."""

from tfiqa.protocols.lodo import PRIORS, run_lodo
from tfiqa.protocols.lodo_report import format_table

__all__ = ["PRIORS", "format_table", "run_lodo"]
