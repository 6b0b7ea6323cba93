"""Importing TensorFlow without its native start-up noise on stderr."""

import os
import sys
import tempfile


def import_tensorflow_quietly():
    """Imports TensorFlow without its C++ start-up lines on stderr.

    oneDNN, cudart and cuInit notices are written by native code while the
    libraries load, before TF_CPP_MIN_LOG_LEVEL is read, so stderr's file
    descriptor is pointed at a temporary file for the import and device
    discovery; what was written there is replayed only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
