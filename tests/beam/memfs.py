"""An in-memory Beam filesystem, "memtest://", standing in for GCS or S3.

Beam finds `FileSystem` subclasses by their scheme once they are imported;
the pipelines in these tests run in this process (DirectRunner), so the
class-level `FILES` dict is what the workers see.
"""

import io

from apache_beam.io.filesystem import FileMetadata, FileSystem

SCHEME = "memtest"


class MemoryFileSystem(FileSystem):
    """Object-store semantics: flat names, no folders, listing by prefix."""

    FILES = {}

    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for path, data in sorted(self.FILES.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), 0.0)

    def create(self, path, mime_type=None, compression_type=None):
        return _Writer(self.FILES, path)

    def open(self, path, mime_type=None, compression_type=None):
        if path not in self.FILES:
            raise FileNotFoundError(path)
        return io.BytesIO(self.FILES[path])

    def copy(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names, strict=True):
            self.FILES[dst] = self.FILES[src]

    def rename(self, source_file_names, destination_file_names):
        for src, dst in zip(source_file_names, destination_file_names, strict=True):
            self.FILES[dst] = self.FILES.pop(src)

    def exists(self, path):
        return path in self.FILES

    def size(self, path):
        return len(self.FILES[path])

    def last_updated(self, path):
        return 0.0

    def metadata(self, path):
        return FileMetadata(path, len(self.FILES[path]), 0.0)

    def delete(self, paths):
        for path in paths:
            self.FILES.pop(path, None)


class _Writer(io.BytesIO):
    def __init__(self, files, path):
        super().__init__()
        self._files, self._path = files, path

    def close(self):
        self._files[self._path] = self.getvalue()
        super().close()


def put(path, data):
    """Stores `data` (bytes) as `memtest://path`; returns the URL."""
    url = f"{SCHEME}://{path}"
    MemoryFileSystem.FILES[url] = bytes(data)
    return url
