"""Scoring images with trained or exported models: `load(path) -> Scorer`."""

from tfiqa.inference.scorer import Scorer, load

__all__ = ["Scorer", "load"]
