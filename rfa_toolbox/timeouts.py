"""Time limits for work that runs user code (building and tracing a model)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from .errors import RFAError


class TimeLimitExceeded(RFAError):
    """Work took longer than its time limit."""


class _Expired(BaseException):
    """Raised by the timer inside the work: a BaseException, so that the ``except Exception``
    of a model's own code (or of the code that runs it) cannot swallow it."""


@contextmanager
def time_limit(seconds: Optional[float], what: str = "the work") -> Iterator[None]:
    """Raise `TimeLimitExceeded` naming ``what`` after ``seconds`` (no limit when None or 0).

    The limit is a timer signal, so it interrupts Python code (a model's forward) but not a
    single long call into C; it works in the main thread only.
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        raise RFAError("a time limit works in the main thread only; run the analysis there or without one")

    active = [True]  # a timer that fires once the work is over must not raise any more

    def expire(signum: int, frame: Any) -> None:
        if active[0]:
            raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    except _Expired:
        raise TimeLimitExceeded(f"{what} took longer than {seconds:g} s") from None
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
