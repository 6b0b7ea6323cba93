"""The registry of dataset readers."""

from tfiqa.registry import Registry

READERS = Registry("dataset reader")
