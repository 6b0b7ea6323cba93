"""Pristine (undistorted) source images: discovery and a generated stand-in.

`generate_pristine` draws procedural images with the ingredients that make
distortions visible and rankable: smooth gradients (banding, colour shifts),
1/f "cloud" texture and fine stripes (blur, noise, compression), and sharp
shape boundaries (ringing, blocking). It lets the quickstart run without any
downloaded data; real photos are better for real training.
"""

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfiqa.data.image_io import IMAGE_EXTENSIONS
from tfiqa.errors import ConfigError, DataError
from tfiqa.files import atomic_path


def split_sources(paths, val_ratio, seed):
    """Splits pristine images into (train, val) by source, before distortion.

    Each file is its own source; files sharing a stem (`a.png`, `a.jpg` in
    different folders) are kept on one side. Deterministic for a seed; at
    least one source goes to each side when there are two or more and
    `val_ratio` > 0.

    Returns:
        (train_paths, val_paths): sorted lists.
    """
    if not 0.0 <= val_ratio < 1.0:
        raise ConfigError(
            f"val_ratio must be in [0, 1). Received: val_ratio={val_ratio}"
        )
    groups = {}
    for path in sorted(str(p) for p in paths):
        stem = os.path.splitext(os.path.basename(path))[0]
        groups.setdefault(stem, []).append(path)
    stems = sorted(groups)
    if not stems:
        raise DataError("No pristine images to split. Received: 0 paths")
    rng = np.random.default_rng(seed)
    order = [stems[i] for i in rng.permutation(len(stems))]
    n_val = int(round(len(stems) * val_ratio))
    if val_ratio > 0 and len(stems) >= 2:
        n_val = min(max(n_val, 1), len(stems) - 1)
    val = sorted(p for s in order[:n_val] for p in groups[s])
    train = sorted(p for s in order[n_val:] for p in groups[s])
    return train, val


def list_images(folder, extensions=IMAGE_EXTENSIONS):
    """All image files under `folder` (recursive), sorted, by extension.

    Hidden files and folders (starting with ".") are ignored.

    Raises:
        DataError: the folder does not exist or holds no images.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"Image folder not found. Received: {folder}")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(exts):
                found.append(os.path.abspath(os.path.join(root, name)))
    if not found:
        raise DataError(
            f"No images ({', '.join(exts)}) found under {folder}. Received: "
            "an empty folder"
        )
    return sorted(found)


def _smooth_noise(rng, h, w, cells, octaves=4):
    """1/f-like noise in [0, 1]: upsampled random grids summed over octaves."""
    out = np.zeros((h, w), np.float32)
    total = 0.0
    for octave in range(octaves):
        n = cells * 2**octave
        grid = rng.random((n + 1, n + 1)).astype(np.float32)
        layer = Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC)
        weight = 0.5**octave
        out += weight * np.asarray(layer)
        total += weight
    out /= total
    return np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1)


def _random_color(rng, lo=0, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, 3))


def _draw_image(rng, h, w):
    # Background: a linear gradient between two colours at a random angle.
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (np.cos(angle) * x / w + np.sin(angle) * y / h) / 2 + 0.5
    t = np.clip(t, 0, 1)[..., None]
    a = np.array(_random_color(rng, 20, 235), np.float32)
    b = np.array(_random_color(rng, 20, 235), np.float32)
    image = (1 - t) * a + t * b
    # Cloud-like texture modulating brightness.
    clouds = _smooth_noise(rng, h, w, cells=int(rng.integers(2, 5)))
    image *= (0.75 + 0.5 * clouds)[..., None]
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(canvas)
    scale = min(h, w)
    for _ in range(int(rng.integers(4, 9))):
        kind = rng.integers(0, 4)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.06, 0.3) * scale
        color = _random_color(rng)
        box = [cx - r, cy - r * rng.uniform(0.5, 1.5), cx + r, cy + r]
        box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), box[3]]
        if kind == 0:
            draw.ellipse(box, fill=color)
        elif kind == 1:
            draw.rectangle(box, fill=color, outline=_random_color(rng), width=2)
        elif kind == 2:
            points = [
                (cx + r * np.cos(th), cy + r * np.sin(th))
                for th in np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
            ]
            draw.polygon(points, fill=color)
        else:
            # A patch of fine stripes: high-frequency detail that blur erases.
            period = int(rng.integers(2, 6))
            other = _random_color(rng)
            x0, y0, x1, y1 = (int(v) for v in box)
            for xs in range(x0, x1, period * 2):
                draw.rectangle([xs, y0, xs + period - 1, y1], fill=color)
                draw.rectangle([xs + period, y0, xs + 2 * period - 1, y1], fill=other)
    for _ in range(int(rng.integers(2, 6))):
        draw.line(
            [tuple(rng.uniform(0, [w, h])), tuple(rng.uniform(0, [w, h]))],
            fill=_random_color(rng),
            width=int(rng.integers(1, 4)),
        )
    # A light blur softens aliasing like a camera's optics; edges stay crisp.
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=0.6))
    # Fine texture and grain so that no area is perfectly flat.
    pixels = np.asarray(canvas).astype(np.float32)
    fine = _smooth_noise(rng, h, w, cells=max(4, scale // 12), octaves=2)
    pixels *= (0.92 + 0.16 * fine)[..., None]
    pixels += rng.normal(0, 1.5, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate_pristine(folder, count=16, size=256, seed=0):
    """Writes `count` procedurally generated PNG images into `folder`.

    Args:
        folder: str. Created if needed.
        count: int. Number of images.
        size: int or (height, width).
        seed: int. Image `i` depends only on `seed` and `i`.

    Returns:
        Sorted list of the written file paths.

    Example:
    ```python
    paths = generate_pristine("runs/quickstart/pristine", count=24, size=256)
    ```
    """
    if int(count) < 1:
        raise ConfigError(f"count must be >= 1. Received: count={count}")
    h, w = (int(size), int(size)) if np.isscalar(size) else map(int, size)
    if min(h, w) < 8:
        raise ConfigError(f"size must be at least 8 pixels. Received: size={size}")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(int(count)):
        rng = np.random.default_rng([int(seed), i])
        path = os.path.abspath(os.path.join(folder, f"pristine_{i:04d}.png"))
        with atomic_path(path) as tmp:
            Image.fromarray(_draw_image(rng, h, w)).save(tmp, format="PNG")
        paths.append(path)
    return sorted(paths)
