"""Readers of every model format, one module each, behind one door.

`tfiqa.load` (`tfiqa.inference.loaders`) resolves a model reference and
hands it to one of these; each returns a `Scorer` that applies the model's
scoring policy, so a photo scores the same through every format:

- `keras`: `.keras` files (Keras safe mode) and in-memory Keras models.
- `saved_model`: SavedModel folders, checked against the op allowlist of
  `trust` before they are loaded.
- `tflite`: `.tflite` files, scored with LiteRT alone (no TensorFlow).
- `sidecar`: the JSON policy record that travels with every export.

`tfiqa.export` writes these formats and verifies what it wrote through the
same readers.
"""
