"""One error discipline for every console script: a user error is one line on stderr and exit code 2.

Every problem a user can fix (a bad option, a missing or unreadable input, an output
that cannot take the result, a config value out of range) is raised as a
:class:`UserError` subclass whose message names the file or option.  The entry points
(``skypile``, ``skypile-train``, ``skypile-train export``) catch it, and ``OSError``
(a path the user gave that cannot be opened or written), with :func:`cli_errors`:
``error: <message>`` on one line, exit 2, no traceback.  Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A problem the user can fix; its message names the file or option (one line)."""


class OutputError(UserError):
    """The output cannot take this run: held by another run, not writable, a file where a directory goes, ..."""


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line: ``OSError`` as ``path: reason``, line breaks folded."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        text = f"{where}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def print_error(exc: BaseException, *, show: bool = True, where: str = "") -> int:
    """Print ``error: [where: ]<one line>`` on stderr (unless ``show`` is false); returns 2."""
    if show:
        print(f"error: {where + ': ' if where else ''}{one_line(exc)}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def cli_errors(fn: Callable[..., int], *args, show: bool | Callable[[], bool] = True) -> int:
    """``fn(*args)``, with a :class:`UserError` or ``OSError`` turned into one line on stderr and exit 2."""
    try:
        return fn(*args)
    except (UserError, OSError) as exc:
        return print_error(exc, show=show() if callable(show) else show)


class UsageError(UserError):
    """Arguments ``argparse`` refused."""


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are user errors like any other: one line (``error: <prog>: ...``), exit 2
    from :func:`cli_errors`, and no ``SystemExit`` for a caller of ``main(argv)``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")
