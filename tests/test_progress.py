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


def _train_two_epochs(tmp_path):
    """The training loop at verbose=1: 2 epochs of 6 steps."""
    from tests.training import helpers
    from tests.training.test_loop import make_loop

    x, y = helpers.regression_data()
    loop = make_loop(tmp_path, helpers.tiny_regressor(), verbose=1)
    loop.fit(lambda e: helpers.regression_dataset(x, y, 8, seed=e), 2, 6)


def test_training_off_a_terminal_prints_one_line_per_epoch(tmp_path, monkeypatch):
    monkeypatch.delenv("TFIQA_PROGRESS", raising=False)
    log = io.StringIO()  # a log file or a pipe
    monkeypatch.setattr(sys, "stdout", log)
    _train_two_epochs(tmp_path)
    lines = log.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "[finetune] epoch 1/2",
        "[finetune] epoch 2/2",
    ]
    assert "\r" not in log.getvalue() and "\b" not in log.getvalue()


def test_training_on_a_terminal_draws_a_bar_per_epoch(tmp_path, monkeypatch):
    monkeypatch.delenv("TFIQA_PROGRESS", raising=False)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    _train_two_epochs(tmp_path)
    text = terminal.getvalue()
    assert "[finetune] epoch 1/2\n" in text and "[finetune] epoch 2/2\n" in text
    assert "\r" in text and "6/6" in text  # a redrawn bar
