"""Scoring images with trained or exported models: `load(path) -> Scorer`."""

from tfiqa.inference.loaders import load
from tfiqa.inference.scorer import Scorer

__all__ = ["Scorer", "load"]
