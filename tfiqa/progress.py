"""Progress of long steps: `keras.utils.Progbar`, written to stderr.

Every long step (pseudo-MOS synthesis, `tfiqa distort`, scoring a dataset,
int8 calibration, the LODO sweep) reports through `progress`, so stdout
keeps only results (CSV, JSON, tables) and can be piped. A bar is shown
when stderr is a terminal; `TFIQA_PROGRESS=1` shows it anyway (logs, CI)
and `TFIQA_PROGRESS=0` hides it. `verbose=0` always hides it.

Example:
```python
with progress(len(paths), "Scoring", unit="image") as bar:
    for path in paths:
        ...
        bar.add(1)
```
"""

import contextlib
import os
import sys

ENV_VAR = "TFIQA_PROGRESS"


def progress_enabled(verbose=1, stream=None):
    """Whether a bar is shown: `verbose` > 0 and `stream` (default stderr) a
    terminal, unless `TFIQA_PROGRESS` says otherwise. In a log file or pipe
    a redrawn bar is thousands of lines of noise."""
    if verbose is not None and int(verbose) <= 0:
        return False
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class Progress:
    """A counter that draws a `keras.utils.Progbar` on stderr when enabled.

    Args:
        total: int. Units of work in the step.
        label: str. What the step does, printed once above the bar.
        verbose: int or None. 0 never shows the bar (see `progress_enabled`).
        unit: str. Name of one unit of work ("image", "run", ...).
        lines: bool. End every update with a line break, for steps whose
            work prints lines of its own between updates.
    """

    def __init__(self, total, label, verbose=1, unit="item", lines=False):
        self.total = int(total)
        self.count = 0
        self.lines = lines
        self._bar = None
        if self.total > 0 and progress_enabled(verbose):
            import keras

            sys.stderr.write(f"{label}\n")
            with contextlib.redirect_stdout(sys.stderr):
                self._bar = keras.utils.Progbar(
                    self.total, unit_name=unit, interval=0 if lines else 0.05
                )

    def add(self, n=1):
        """Counts `n` more units of work done."""
        self.count += int(n)
        if self._bar is None:
            return
        # Progbar writes to sys.stdout; stdout is kept for results.
        with contextlib.redirect_stdout(sys.stderr):
            self._bar.update(self.count, finalize=self.count >= self.total)
        if self.lines and self.count < self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress(total, label, verbose=1, unit="item", lines=False):
    """A `Progress` for `total` units of work (a context manager)."""
    return Progress(total, label, verbose=verbose, unit=unit, lines=lines)
