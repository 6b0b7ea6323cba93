"""tfiqa: no-reference image quality assessment for TensorFlow/Keras."""

import sys

__version__ = "0.1.0"

# The public API; the names are imported on first use because most load
# TensorFlow, and `import tfiqa` (and `tfiqa --help`) must stay instant.
__all__ = ["Scorer", "csv_name", "image_path", "load", "load_config"]
_LAZY = {
    "Scorer": "tfiqa.inference",
    "csv_name": "tfiqa.csv_names",
    "image_path": "tfiqa.csv_names",
    "load": "tfiqa.inference",
    "load_config": "tfiqa.config",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfiqa' has no attribute {name!r}")


def __dir__():
    return sorted([*__all__, "__version__"])


def _register_keras_classes():
    """Registers tfiqa's Keras classes so `keras.saving.load_model` finds them.

    `import tfiqa` must stay free of TensorFlow (the CLI starts instantly), so
    the classes are registered as soon as Keras is imported: now if it
    already is, otherwise by a hook that runs right after `import keras`.
    """
    if "keras" in sys.modules:
        import tfiqa.models  # noqa: F401  (registers on import)

        return
    sys.meta_path.insert(0, _KerasImportHook())


class _KerasImportHook:
    """A meta-path finder that imports tfiqa.models after Keras has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            sys.modules["keras"] = module
            import tfiqa.models  # noqa: F401  (registers on import)

        spec.loader.exec_module = exec_then_register
        return spec


_register_keras_classes()
