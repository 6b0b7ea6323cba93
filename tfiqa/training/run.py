"""Compatibility names: the orchestration lives in `tfiqa.training.experiment`."""

from tfiqa.training.experiment import format_summary, run_experiment

__all__ = ["format_summary", "run_experiment"]
