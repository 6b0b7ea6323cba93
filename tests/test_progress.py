import io
import sys

from tfiqa.progress import progress, progress_enabled


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _terminal(monkeypatch):
    """stderr is a terminal (called in the test body: capture resumes with
    the body and would replace an earlier sys.stderr)."""
    monkeypatch.delenv("TFIQA_PROGRESS", raising=False)
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def test_bar_on_stderr_of_a_terminal(monkeypatch, capsys):
    terminal = _terminal(monkeypatch)
    with progress(7, "Working", unit="image") as bar:
        for _ in range(7):
            bar.add(1)
    text = terminal.getvalue()
    assert text.startswith("Working\n")
    assert "7/7" in text and "/image" in text and text.endswith("\n")
    assert capsys.readouterr().out == ""  # nothing on stdout
    assert bar.count == 7


def test_silent_off_a_terminal_or_with_verbose_0(monkeypatch):
    terminal = _terminal(monkeypatch)
    with progress(3, "Working", verbose=0) as bar:
        bar.add(3)
    assert terminal.getvalue() == ""
    monkeypatch.setenv("TFIQA_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a file
    monkeypatch.delenv("TFIQA_PROGRESS")
    assert not progress_enabled()
    monkeypatch.setenv("TFIQA_PROGRESS", "1")
    assert progress_enabled() and not progress_enabled(verbose=0)


def test_lines_mode_ends_every_update(monkeypatch):
    terminal = _terminal(monkeypatch)
    with progress(3, "Sweep", unit="run", lines=True) as bar:
        for _ in range(3):
            bar.add(1)
    lines = terminal.getvalue().split("\n")
    assert lines[0] == "Sweep"
    assert ["1/3" in lines[1], "2/3" in lines[2], "3/3" in lines[3]] == [True] * 3
