"""Files on any Beam filesystem (GCS, S3, HDFS, ...) next to local ones.

Local paths go through the same code as `tfiqa predict` (`load_image`,
`tfiqa.load`); a path with a scheme (`gs://...`) is read through
`apache_beam.io.filesystems.FileSystems`, whose back ends come with
Beam's extras (`apache-beam[gcp]`, `[aws]`, ...).
"""

import os
import tempfile

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from tfiqa.errors import ImageError, TfiqaError

# A whole encoded file is read into memory: 256 MiB is far beyond any
# photo (an 80-megapixel image, `MAX_PIXELS`, is 240 MB decoded).
MAX_FILE_BYTES = 256 * 2**20
_CHUNK = 2**22
# Suffixes of single-file model formats (others are SavedModel folders).
_MODEL_FILES = (".keras", ".tflite")


class OSName(str):
    """A file name whose undecodable bytes are surrogates (`os.fsdecode`).

    Beam's coders write text as strict UTF-8 and refuse such names; this
    subclass travels pickled instead, so the name reaches the CSV as the
    bytes it has on disk.
    """

    __slots__ = ()


def beam_text(text):
    """`text`, as an `OSName` if it holds surrogates Beam cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return OSName(text)
    return text


def is_remote(path):
    """Whether `path` names a file on a Beam filesystem other than local."""
    return isinstance(path, str) and FileSystems.get_scheme(path) is not None


def read_bytes(path, limit=MAX_FILE_BYTES):
    """The bytes of a file on any Beam filesystem, at most `limit` of them.

    Raises:
        ImageError: the file is missing, unreadable or larger than `limit`.
    """
    try:
        with _open(path) as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ImageError(path, "Image file not found") from None
    except Exception as e:  # each back end raises its own errors
        if _not_found(e):
            raise ImageError(path, "Image file not found") from None
        reason = str(e).replace("\n", " ") or type(e).__name__
        raise ImageError(path, f"Cannot read image file ({reason})") from None
    if len(data) > limit:
        raise ImageError(path, f"Image file larger than {limit} bytes")
    return data


def _not_found(error):
    causes = getattr(error, "exception_details", None) or {}
    return any(isinstance(e, FileNotFoundError) for e in causes.values())


def stage_model(reference, folder=None):
    """A local copy of a model on a Beam filesystem, for `tfiqa.load`.

    A `.keras` file is copied alone, a `.tflite` file with its JSON sidecar
    (when there is one), anything else as a SavedModel folder (every file
    under it).

    Args:
        reference: str. A remote model path, e.g. "gs://bucket/model.tflite".
        folder: str or None. Where to copy it (None: a new temporary folder).

    Returns:
        str, the local path to pass to `tfiqa.load`.

    Raises:
        TfiqaError: nothing is found at `reference`.
    """
    folder = folder or tempfile.mkdtemp(prefix="tfiqa-model-")
    if reference.lower().endswith(_MODEL_FILES):
        local = os.path.join(folder, reference.rstrip("/").rsplit("/", 1)[-1])
        if not FileSystems.exists(reference):
            raise TfiqaError(f"Model not found. Received: {reference}")
        _copy(reference, local)
        sidecar = os.path.splitext(reference)[0] + ".json"
        if reference.lower().endswith(".tflite") and FileSystems.exists(sidecar):
            _copy(sidecar, os.path.splitext(local)[0] + ".json")
        return local
    prefix = reference.rstrip("/") + "/"
    local = os.path.join(folder, prefix.rstrip("/").rsplit("/", 1)[-1])
    (match,) = FileSystems.match([prefix + "**"])
    files = [m.path for m in match.metadata_list]
    if not files:
        raise TfiqaError(f"Model not found. Received: {reference}")
    for path in files:
        parts = path[len(prefix) :].split("/")
        if any(part in ("", ".", "..") for part in parts):
            # An object name must not put a file outside the copy.
            raise TfiqaError(f"Unsafe file name in a model folder. Received: {path}")
        _copy(path, os.path.join(local, *parts))
    return local


def _open(path):
    # Bytes as stored: no decompression guessed from a ".gz" suffix.
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _copy(source, destination):
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    with _open(source) as src, open(destination, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
