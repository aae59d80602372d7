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


def write_output(text: str, output: Optional[Path]) -> None:
    """Write ``text`` to ``output``, or to standard output; failures are `RFAError`s."""
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            raise RFAError("standard output was closed before the output was written") from None
        except OSError as exc:
            raise RFAError(f"cannot write to standard output: {reason(exc)}") from None
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RFAError(f"cannot write {output}: {reason(exc)}") from None
    sys.stderr.write(f"wrote {output}\n")


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
