"""`ScoringPolicy`: how a photo becomes the crops a quality model scores.

A property of the model (`IQAModel.scoring_policy`) that travels into every
export's sidecar (`to_dict`) and serving graph, and that `Scorer` applies.
With `resize > 0` an image is first resized (antialiased, aspect ratio kept)
so that its short side is `resize`, which puts photos of any resolution at
the scale the model was trained on. An image is then scored as the mean of
`crops` deterministic `crop_size` x `crop_size` crops spread over it
(`tfiqa.data.crops.crop_positions`). An image whose short side is below
`crop_size` is first upscaled (bilinear, aspect ratio kept) until its short
side is `crop_size` ("upscale", the default), or scored whole at its own size
("whole": only backends with a dynamic input size can do that).

This module needs numpy only, so that a `.tflite` model is scored without
TensorFlow; `tfiqa.models.scoring` applies the same policy inside graphs,
and `tfiqa.data.resize` gives the pixels TF's resize gives.

Example:
```python
policy = ScoringPolicy.of(model)  # ScoringPolicy(crop_size=64, crops=3, ...)
crops = policy.crops_of(image)    # uint8 (3, 64, 64, 3)
```
"""

import dataclasses
from typing import ClassVar

import numpy as np

from tfiqa.data.crops import eval_crops
from tfiqa.data.resize import resize_short_side
from tfiqa.errors import ConfigError

SMALL_IMAGE_RULES = ("upscale", "whole")


@dataclasses.dataclass(frozen=True)
class ScoringPolicy:
    """How an image is scored (see the module docstring).

    Args:
        crop_size: int. Side of the square crops (config: `data.crop_size`).
        crops: int. Crops averaged per image (config: `model.scoring.crops`).
        small_images: str. "upscale" or "whole", for images whose short side
            is below `crop_size`.
        resize: int. 0 (off) or the short side every image is resized to
            before its crops are cut (config: `model.scoring.resize`).

    Example:
    ```python
    policy = ScoringPolicy(crop_size=32, crops=3, resize=48)
    policy.crops_of(np.zeros((40, 90, 3), "uint8")).shape  # (3, 32, 32, 3)
    ScoringPolicy.from_dict(policy.to_dict()) == policy    # True
    ```
    """

    crop_size: int = 224
    crops: int = 5
    small_images: str = "upscale"
    resize: int = 0
    # Where crops go (`tfiqa.data.crops.crop_positions`); recorded in sidecars
    # so that a reader can tell, fixed until a second placement exists.
    placement: ClassVar[str] = "spread"

    def __post_init__(self):
        for name, config_key in (
            ("crop_size", "data.crop_size"),
            ("crops", "model.scoring.crops"),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(
                    f"The scoring policy's {name} ({config_key}) must be a positive "
                    f"integer. Received: {name}={value!r}"
                )
        if not _is_int(self.resize) or self.resize < 0:
            raise ConfigError(
                "The scoring policy's resize (model.scoring.resize) must be 0 (off) "
                f"or a positive short side. Received: resize={self.resize!r}"
            )
        if 0 < self.resize < self.crop_size:
            raise ConfigError(
                f"The scoring policy's resize ({self.resize}) must be 0 or at "
                f"least its crop_size ({self.crop_size}). "
                f"Received: resize={self.resize!r}"
            )
        if self.small_images not in SMALL_IMAGE_RULES:
            raise ConfigError(
                "The scoring policy's small_images must be one of "
                f"{', '.join(SMALL_IMAGE_RULES)}. "
                f"Received: small_images={self.small_images!r}"
            )
        # numpy integers become ints: records stay JSON-ready and compare equal.
        object.__setattr__(self, "crop_size", int(self.crop_size))
        object.__setattr__(self, "crops", int(self.crops))
        object.__setattr__(self, "resize", int(self.resize))

    @classmethod
    def of(cls, model):
        """The policy `model` carries (`IQAModel.scoring_policy`); the
        defaults for a model without one."""
        return getattr(model, "scoring_policy", None) or cls()

    def to_dict(self):
        """The JSON record sidecars and export manifests hold."""
        return {
            "crop_size": self.crop_size,
            "crops": self.crops,
            "placement": self.placement,
            "small_images": self.small_images,
            "resize": self.resize,
        }

    @classmethod
    def from_dict(cls, record):
        """The policy of a `to_dict` record; keys that older sidecars lack
        (`small_images`, `resize`, `placement`) take their defaults."""
        unknown = set(record) - {"placement", *(f.name for f in _FIELDS)}
        if unknown:
            raise ConfigError(
                "Unknown scoring policy keys "
                f"{', '.join(sorted(unknown))}; valid: "
                f"{', '.join(f.name for f in _FIELDS)}, placement. "
                f"Received: {record!r}"
            )
        placement = record.get("placement") or cls.placement
        if placement != cls.placement:
            raise ConfigError(
                f"The scoring policy's placement must be {cls.placement!r}. "
                f"Received: placement={placement!r}"
            )
        # None is how older records wrote "the default".
        return cls(
            **{
                f.name: record[f.name]
                for f in _FIELDS
                if record.get(f.name) is not None
            }
        )

    def describe(self):
        """One line for people: '5 x 224 px crops, small images: upscale'."""
        resized = f"resized to a {self.resize} px short side, " if self.resize else ""
        return (
            f"{resized}{self.crops} x {self.crop_size} px crops, "
            f"small images: {self.small_images}"
        )

    def resize_image(self, image):
        """The resize step (uint8 numpy (H, W, 3) in and out); a no-op when off."""
        if not self.resize:
            return image
        return resize_short_side(image, self.resize)

    def is_small(self, image):
        """True if the image's short side is below `crop_size` (never with a
        resize step: it brings every image to at least the crop size)."""
        if self.resize:
            return False
        return min(int(image.shape[0]), int(image.shape[1])) < self.crop_size

    def crops_of(self, image, num_crops=None):
        """The policy's crops of one uint8 numpy image -> (N, c, c, 3).

        Applies the "upscale" rule to small images; with "whole" a small image
        must be scored at its own size instead (check `is_small` first).
        """
        image = self.resize_image(image)
        if self.is_small(image):
            image = resize_short_side(image, self.crop_size, downscale=False)
        return np.asarray(eval_crops(image, self.crop_size, num_crops or self.crops))


_FIELDS = dataclasses.fields(ScoringPolicy)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
