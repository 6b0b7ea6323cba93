"""`ImagePaths`: files, folders, globs and list files -> image paths."""

import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from tfiqa.beam.filesystems import beam_text, is_remote
from tfiqa.data.image_io import IMAGE_EXTENSIONS
from tfiqa.inference.predict import expand_inputs, is_image_name

_GLOB = "*?["


class ImagePaths(beam.PTransform):
    """The paths of the images to score, as `tfiqa predict` finds them.

    Local inputs are expanded when the pipeline is built, by the function
    `tfiqa predict` uses (`expand_inputs`: folders walked recursively for
    image files, hidden ones skipped; a missing path is kept so that it
    gets an error row). Inputs on a Beam filesystem are expanded by the
    workers: a glob ("gs://b/photos/*.jpg") or a folder (a trailing "/" or
    no image extension: "gs://b/photos") becomes the image files matched
    under it (recursively for a folder, hidden names skipped), and a path
    with an image extension is kept as it is. Each line of a list file
    (any Beam filesystem; "gs://b/lists/part-*.txt" reads many in parallel)
    is one path, taken as it is: the way to give a job millions of photos
    without listing a bucket.

    Args:
        inputs: iterable of str. Files, folders and remote globs.
        lists: iterable of str. Text files (or globs of them), one image
            path per line.

    Returns (when applied to a pipeline):
        PCollection of str, spread over the workers.

    Raises:
        DataError: the local inputs hold no image (and there is nothing else).
    """

    def __init__(self, inputs=(), lists=()):
        super().__init__()
        self.inputs = [os.fspath(i) for i in inputs]
        self.lists = [os.fspath(i) for i in lists]

    def expand(self, pbegin):
        local = [i for i in self.inputs if not is_remote(i)]
        remote = [i for i in self.inputs if is_remote(i)]
        files = [i for i in remote if _is_file(i)]
        patterns = [_pattern(i) for i in remote if not _is_file(i)]
        parts = []
        if local or files:
            names = expand_inputs(local) if local else []
            parts.append(
                pbegin | "Files" >> beam.Create([beam_text(p) for p in names + files])
            )
        if patterns:
            parts.append(
                pbegin
                | "Patterns" >> beam.Create(patterns)
                | "Match" >> beam.FlatMap(_match_images)
                | "Spread" >> beam.Reshuffle()
            )
        for i, pattern in enumerate(self.lists):
            parts.append(
                pbegin
                | f"List{i}" >> beam.io.ReadFromText(pattern)
                | f"ListPaths{i}" >> beam.FlatMap(_list_line)
            )
        if not parts:
            raise ValueError("ImagePaths needs inputs or lists; received neither")
        if len(parts) == 1:
            return parts[0]
        return tuple(parts) | "All" >> beam.Flatten()


def _is_file(path):
    return not any(c in path for c in _GLOB) and path.lower().endswith(IMAGE_EXTENSIONS)


def _pattern(path):
    if any(c in path for c in _GLOB):
        return path
    return path.rstrip("/") + "/**"


def _match_images(pattern):
    """Image files matched by `pattern`; hidden names below its fixed part
    are skipped, as a local folder walk skips them."""
    cut = min(pattern.find(c) for c in _GLOB if c in pattern)
    fixed = pattern[: pattern.rfind("/", 0, cut) + 1]
    (result,) = FileSystems.match([pattern])
    for metadata in result.metadata_list:
        parts = metadata.path[len(fixed) :].split("/")
        if is_image_name(parts[-1]) and not any(p.startswith(".") for p in parts):
            yield metadata.path


def _list_line(line):
    path = line.strip()
    if path:
        yield path
