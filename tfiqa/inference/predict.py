"""File handling for `tfiqa predict`: expand folders, score, write a CSV.

A file that cannot be read is reported in the CSV's `error` column and the
other images are still scored. With an output file, rows are appended to
`<output>.partial` as each batch is scored and the file is renamed to
`<output>` at the end: a killed run leaves its finished rows there, and
running the same command again resumes from them. `<output>.lock` keeps a
second process from writing the same output. File names are written as
the bytes they have on disk (UTF-8, undecodable bytes kept as they are) and
quoted whenever they hold a comma, quote or line break.
"""

import csv
import io
import os
import sys

from tfiqa.errors import DataError

CSV_COLUMNS = ("image", "score", "error")
# File names are bytes on POSIX: undecodable ones round-trip unchanged.
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


def _image_extensions():
    from tfiqa.data.image_io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def is_image_name(name):
    """Whether a file name is one a folder walk scores: an image extension,
    not hidden."""
    return name.lower().endswith(_image_extensions()) and not name.startswith(".")


def expand_inputs(inputs):
    """Files as given plus every image file under the given folders (recursive).

    Args:
        inputs: iterable of str. Image files and/or folders.

    Returns:
        list of str, folders' images sorted, duplicates dropped. A path that
        does not exist, or is not a regular file, is kept so that its error
        shows up in the results; so is a folder holding no images.

    Raises:
        DataError: nothing to score (no files, or folders without images).
    """
    extensions = _image_extensions()
    inputs = [os.fspath(item) for item in inputs]
    found, empty_folders = [], []
    for item in inputs:
        if os.path.isdir(item):
            images = []
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                images.extend(
                    os.path.join(root, name)
                    for name in sorted(files)
                    if is_image_name(name)
                )
            found.extend(images)
            if not images:
                empty_folders.append(item)
        else:
            found.append(item)
    if not found:
        raise DataError(
            f"No images ({', '.join(extensions)}) found. Received: {inputs}"
        )
    # A folder without images among other inputs (say one named x.jpg) gets
    # an error row instead of vanishing from the count.
    return list(dict.fromkeys(found + empty_folders))


def predict_files(
    scorer, paths, crops=None, full=False, batch_size=16, on_progress=None, sink=None
):
    """Scores image files, recording per-file errors instead of stopping.

    Args:
        scorer: `tfiqa.inference.Scorer`.
        paths: list of str. Image files.
        crops, full: see `Scorer.score`.
        batch_size: int. Images loaded and scored together.
        on_progress: callable(int) or None. Called with the number of images
            finished after each batch.
        sink: callable(list of rows) or None. Gets each batch's rows as soon
            as they are scored.

    Returns:
        list of dicts {"image": path, "score": float or None, "error": str}.
    """
    rows, batch = [], []
    for row in scorer.score_files(paths, crops, full, batch_size):
        batch.append({k: row[k] for k in CSV_COLUMNS})
        if len(batch) == batch_size:
            rows.extend(_flush(batch, sink, on_progress))
            batch = []
    rows.extend(_flush(batch, sink, on_progress))
    return rows


def _flush(batch, sink, on_progress):
    if batch and sink is not None:
        sink(batch)
    if batch and on_progress is not None:
        on_progress(len(batch))
    return batch


def _csv_text(rows, header=False):
    buffer = io.StringIO()
    for fields in ([CSV_COLUMNS] if header else []) + [_fields(r) for r in rows]:
        # The csv module only quotes "\r" when it ends its lines: quote it here.
        quoting = csv.QUOTE_ALL if any("\r" in f for f in fields) else csv.QUOTE_MINIMAL
        csv.writer(buffer, lineterminator="\n", quoting=quoting).writerow(fields)
    return buffer.getvalue()


def _fields(row):
    score = "" if row["score"] is None else f"{row['score']:.6f}"
    return [row["image"], score, row["error"]]


def rows_to_csv(rows):
    """CSV text with the header image,score,error (score empty on error)."""
    return _csv_text(rows, header=True)


def csv_records(rows):
    """CSV text of `rows` without the header, each ending in a line break
    (one record can span lines: a name with a line break is quoted)."""
    return _csv_text(rows)


def echo_csv(rows):
    """Writes the CSV to stdout, names byte for byte (see `ENCODING`)."""
    data = rows_to_csv(rows).encode(**ENCODING)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


class PredictionWriter:
    """Appends rows to `<output>.partial` and renames it to `output` at the end.

    Holds `<output>.lock` (with its process id) while open; a lock whose
    process is gone is taken over. Rows already in a `.partial` file from a
    killed run are kept (those of `paths`, if given) and their images are
    not scored again (`done`).

    Example:
    ```python
    with PredictionWriter("scores.csv", paths) as writer:
        todo = [p for p in paths if p not in writer.done]
        predict_files(scorer, todo, sink=writer.write)
    ```
    """

    def __init__(self, output, paths=None):
        self.output = os.fspath(output)
        self.paths = None if paths is None else set(paths)
        self.partial = self.output + ".partial"
        self.lock = self.output + ".lock"
        self.done = {}

    def __enter__(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.output)), exist_ok=True)
        self._acquire()
        try:
            self.done = {
                image: row
                for image, row in _read_partial(self.partial).items()
                if self.paths is None or image in self.paths
            }
            self._file = open(self.partial, "w", newline="", **ENCODING)
            self._file.write(rows_to_csv(self.done.values()))
            self._file.flush()
        except BaseException:
            os.remove(self.lock)
            raise
        return self

    def write(self, rows):
        self._file.write(_csv_text(rows))
        self._file.flush()

    def __exit__(self, kind, error, traceback):
        self._file.close()
        try:
            if kind is None:
                os.replace(self.partial, self.output)
        finally:
            os.remove(self.lock)
        return False

    def _acquire(self):
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if _lock_alive(self.lock):
                    raise DataError(
                        f"Another process is writing {self.output} (lock file "
                        f"{self.lock}); wait for it or choose another --output."
                    ) from None
                os.remove(self.lock)  # its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return
        raise DataError(f"Cannot lock {self.output}. Received: {self.lock}")


def predict_resumable(output, paths, score, log=None):
    """Scores into `output` through a `PredictionWriter`, resuming its rows.

    Args:
        output: str. The CSV to write.
        paths: list of str. Every image of the run.
        score: callable(todo paths, sink) -> rows, e.g. `predict_files`.
        log: callable(str) or None.

    Returns:
        The rows of `paths`, in order (resumed ones included).
    """
    with PredictionWriter(output, paths) as writer:
        if writer.done and log is not None:
            log(f"Resuming: {len(writer.done)} rows kept from {writer.partial}")
        scored = score([p for p in paths if p not in writer.done], writer.write)
    by_image = {**writer.done, **{row["image"]: row for row in scored}}
    return [by_image[p] for p in paths if p in by_image]


def _lock_alive(lock):
    try:
        with open(lock) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_partial(path):
    """Rows of a `.partial` file left by a killed run, {image: row}."""
    done = {}
    try:
        with open(path, newline="", **ENCODING) as f:
            text = f.read()
    except FileNotFoundError:
        return done
    # A kill can cut the last line short: keep whole lines only.
    text = text[: text.rfind("\n") + 1]
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            if None in row or row.get("error") is None or not row.get("image"):
                break  # a line cut short by the kill
            score = row.get("score") or ""
            try:
                value = float(score) if score else None
            except ValueError:
                break
            done[row["image"]] = {
                "image": row["image"],
                "score": value,
                "error": row["error"],
            }
    except csv.Error:
        pass
    return done
