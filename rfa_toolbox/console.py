"""What the ``rfa`` command writes and shows: output files and standard output with errors in
our words, the model's own prints kept off standard output, progress on a terminal."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

from .errors import RFAError
from .files import reason


def write_output(text: str, output: Optional[str | Path]) -> None:
    """Write ``text`` to ``output`` (its folder made when missing), or to standard output;
    failures are `RFAError`s."""
    if output is None:
        if getattr(sys.stdout, "closed_at_start", False):
            raise RFAError("standard output is closed: give an output file with --output")
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            raise RFAError("standard output was closed before the output was written") from None
        except OSError as exc:
            raise RFAError(f"cannot write to standard output: {reason(exc)}") from None
        return
    path = output_path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RFAError(f"cannot write {path}: {reason(exc)}") from None
    sys.stderr.write(f"wrote {path}\n")


def output_path(output: str | Path) -> Path:
    """An output file name as a path; a name ending in a slash names a folder, not a file."""
    text = str(output)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise RFAError(f"{text} is a folder: give a file name, such as {Path(text) / 'report.json'}")
    return Path(text)


class _Closed:
    """Standard output or error that was closed when rfa started (``>&-``): writes go nowhere,
    and the report, if it was to go there, is refused with a message."""

    closed_at_start = True

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def guard_closed_streams() -> None:
    """Give a closed standard output or error a stand-in, so that nothing fails on it."""
    if sys.stdout is None:
        sys.stdout = _Closed()
    if sys.stderr is None:
        sys.stderr = _Closed()


def _silence_stdout() -> None:
    """After a closed pipe, point standard output at /dev/null: Python would otherwise print
    a complaint of its own when it flushes at exit."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextlib.contextmanager
def model_prints_to_stderr() -> Iterator[None]:
    """While a model is imported, built and traced, what it prints goes to standard error, so
    that standard output holds the report only (JSON stays JSON)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@contextlib.contextmanager
def progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A function that shows the current step on a spinner line on standard error (only when
    ``enabled``, for a terminal); the line is gone when the work ends."""
    if not enabled:
        yield lambda text: None
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("starting", spinner="dots") as status:
        yield lambda text: status.update(f"{text} ...")


def terminal_width() -> Optional[int]:
    """The width of the terminal standard output shows on, or None when it is not one."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns
