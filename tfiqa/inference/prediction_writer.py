"""`PredictionWriter`: `tfiqa predict --output`, resumable and safe to kill.

Rows are appended to `<output>.partial` as each batch is scored and
`<output>` is written from them at the end: a killed run leaves its finished
rows there, and running the same command again resumes from them. The
`.partial` file records the model and scoring that wrote it; another
model's rows are never resumed. `<output>.lock` keeps a second process from
writing the same output. Outputs are regular files only; a write that fails
(full disk, read-only file system) is a one-line `DataError` that keeps the
rows already in `.partial`.
"""

import contextlib
import csv
import hashlib
import io
import json
import os

from tfiqa.csv_names import image_path
from tfiqa.errors import DataError
from tfiqa.files import (
    check_regular_output,
    process_alive,
    reporting_write_errors,
    write_text_atomic,
)
from tfiqa.inference.predict import ENCODING, csv_records, rows_to_csv

# First line of a `.partial` file, followed by its `model_record` as JSON.
RECORD_PREFIX = "# tfiqa partial of "


def model_record(scorer, crops=None, full=False):
    """What a `.partial` file records of the run writing it, so that only the
    same model and scoring resume it: {"model", "scoring"}.

    The model is a preset's name and format, or the SHA-256 of the model
    file or SavedModel folder (renaming or copying it does not matter);
    scoring is "full" or "crops=N".
    """
    preset = getattr(scorer, "preset", None)
    if preset:
        model = f"preset:{preset} ({scorer.backend})"
    else:
        model = f"sha256:{_content_sha256(scorer.path)}"
    if full:
        return {"model": model, "scoring": "full"}
    return {"model": model, "scoring": f"crops={crops or scorer.policy.crops}"}


def _content_sha256(path):
    from tfiqa.presets import file_sha256

    if not os.path.isdir(path):
        return file_sha256(path)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            file = os.path.join(root, name)
            digest.update(os.fsencode(os.path.relpath(file, path)) + b"\0")
            digest.update(file_sha256(file).encode())
    return digest.hexdigest()


class PredictionWriter:
    """Appends rows to `<output>.partial`; `finish` writes `output`.

    Holds `<output>.lock` (with its process id) while open; a lock whose
    process is gone is taken over. Rows already in a `.partial` file from a
    killed run with the same `model` record are kept (those of `paths`, if
    given) and their images are not scored again (`done`); a `.partial`
    file of another model, or one without a record, is refused.

    Args:
        output: str. The CSV to write; it must be a regular file or absent.
        paths: iterable of str or None. The run's images.
        model: dict. The run's `model_record` (None: a `.partial` file
            left behind is refused, as nothing tells whose it is).

    Raises:
        DataError: output not a regular file, locked by a live process, a
            `.partial` file of another model, or a failed write (full disk,
            read-only file system, ...), naming the file.

    Example:
    ```python
    record = model_record(scorer)
    with PredictionWriter("scores.csv", paths, record) as writer:
        todo = [p for p in paths if p not in writer.done]
        rows = predict_files(scorer, todo, sink=writer.write)
        writer.finish(list(writer.done.values()) + rows)
    ```
    """

    def __init__(self, output, paths=None, model=None):
        self.output = os.fspath(output)
        self.paths = None if paths is None else set(paths)
        self.model = model
        self.partial = self.output + ".partial"
        self.lock = self.output + ".lock"
        self.done = {}
        self._file = None

    def __enter__(self):
        for path in (self.output, self.partial, self.lock):
            check_regular_output(path)
        folder = os.path.dirname(os.path.abspath(self.output))
        with reporting_write_errors(folder):
            os.makedirs(folder, exist_ok=True)
        self._acquire()
        try:
            self.done = {
                image: row
                for image, row in self._resumable_rows().items()
                if self.paths is None or image in self.paths
            }
            record = RECORD_PREFIX + json.dumps(self.model) + "\n"
            with reporting_write_errors(self.partial):
                # Replaced, not truncated: a full disk keeps the old rows.
                write_text_atomic(
                    self.partial, record + rows_to_csv(self.done.values())
                )
                self._file = open(self.partial, "a", newline="", **ENCODING)
        except BaseException:
            self._release()
            raise
        return self

    def write(self, rows):
        with reporting_write_errors(self.partial):
            self._file.write(csv_records(rows))
            self._file.flush()

    def finish(self, rows):
        """Writes `rows` (the run's, in order) to `output`; drops `.partial`."""
        self._close()
        with reporting_write_errors(self.output):
            write_text_atomic(self.output, rows_to_csv(rows))
        with reporting_write_errors(self.partial):
            os.remove(self.partial)

    def __exit__(self, kind, error, traceback):
        try:
            if kind is None:
                self._close()
            else:
                # Already failing (often a full disk): the rows flushed so far
                # are in `.partial`; a second write error would hide the first.
                with contextlib.suppress(OSError):
                    self._file.close()
        finally:
            self._release()
        return False

    def _close(self):
        if not self._file.closed:
            with reporting_write_errors(self.partial):
                self._file.close()

    def _resumable_rows(self):
        found = _read_partial(self.partial)
        if found is None:
            return {}
        record, rows = found
        what_to_do = "remove it to start over, or choose another --output."
        if record is None:
            raise DataError(
                f"{self.partial} (left by a killed run) does not record which "
                f"model wrote it, so its rows cannot be resumed; {what_to_do}"
            )
        if record != self.model:
            raise DataError(
                f"{self.partial} (left by a killed run) holds scores of another "
                f"model or scoring; {what_to_do} Received: {_describe(record)}, "
                f"this run: {_describe(self.model)}"
            )
        return rows

    def _acquire(self):
        for _ in range(2):
            with reporting_write_errors(self.lock):
                fd = _create_new(self.lock)
                if fd is None and not _lock_alive(self.lock):
                    os.remove(self.lock)  # its process is gone
                    continue
            if fd is None:
                raise DataError(
                    f"Another process is writing {self.output} (lock file "
                    f"{self.lock}); wait for it or choose another --output."
                )
            try:
                with reporting_write_errors(self.lock), os.fdopen(fd, "w") as f:
                    f.write(str(os.getpid()))
            except BaseException:
                self._release()
                raise
            return
        raise DataError(f"Cannot lock {self.output}. Received: {self.lock}")

    def _release(self):
        with contextlib.suppress(OSError):
            os.remove(self.lock)


def _describe(record):
    if not isinstance(record, dict):
        return repr(record)
    return f"model {record.get('model')}, {record.get('scoring')}"


def predict_resumable(output, paths, score, log=None, model=None):
    """Scores into `output` through a `PredictionWriter`, resuming its rows.

    Args:
        output: str. The CSV to write.
        paths: list of str. Every image of the run.
        score: callable(todo paths, sink) -> rows, e.g. `predict_files`.
        log: callable(str) or None.
        model: dict. The run's `model_record`.

    Returns:
        The rows of `paths`, in order (resumed ones included).
    """
    with PredictionWriter(output, paths, model) as writer:
        if writer.done and log is not None:
            log(f"Resuming: {len(writer.done)} rows kept from {writer.partial}")
        scored = score([p for p in paths if p not in writer.done], writer.write)
        by_image = {**writer.done, **{row["image"]: row for row in scored}}
        rows = [by_image[p] for p in paths if p in by_image]
        writer.finish(rows)
    return rows


def _create_new(path):
    """A write descriptor of a newly created `path`; None if it exists."""
    try:
        return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None


def _lock_alive(lock):
    try:
        with open(lock) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    return process_alive(pid)


def _read_partial(path):
    """(record or None, {image: row}) of a `.partial` file left by a killed
    run, or None if there is none."""
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DataError(f"Cannot read {path}: {e.strerror}") from None
    first, _, text = text.partition("\n")
    record = None
    if first.startswith(RECORD_PREFIX):
        with contextlib.suppress(ValueError):
            record = json.loads(first[len(RECORD_PREFIX) :])
    # A kill can cut the last line short: keep whole lines only.
    text = text[: text.rfind("\n") + 1]
    done = {}
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            if None in row or row.get("error") is None or not row.get("image"):
                break  # a line cut short by the kill
            score = row.get("score") or ""
            try:
                value = float(score) if score else None
            except ValueError:
                break
            image = image_path(row["image"])
            done[image] = {
                "image": image,
                "score": value,
                "error": image_path(row["error"]),
            }
    except csv.Error:
        pass
    return record, done
