"""tfiqa: no-reference image quality assessment for TensorFlow/Keras."""

__version__ = "0.1.0"
