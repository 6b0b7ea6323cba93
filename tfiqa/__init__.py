"""tfiqa: no-reference image quality assessment for TensorFlow/Keras."""

__version__ = "0.1.0"


def __getattr__(name):
    # `tfiqa.load` imports TensorFlow only when used, keeping `tfiqa --help` fast.
    if name == "load":
        from tfiqa.inference import load

        return load
    raise AttributeError(f"module 'tfiqa' has no attribute {name!r}")
