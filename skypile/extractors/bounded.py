"""Run a per-page function in a helper process, so one page can cost at most ``timeout_s``.

A hang inside lxml or trafilatura's C-backed code (a 150k-cell table row, a
pathological regex) cannot be interrupted from Python: ``SIGALRM`` only
reaches the main thread and waits for C code to return, and a thread cannot be
killed.  (An in-process alarm was measured as the cheaper bound and rejected:
one 0.9 MB element of 60,000 attributes holds lxml's parser 6 s and lexbor's
10 s in C, out of a signal's reach.)  A process can.  So the extract stage hands each page to a long-lived
helper (``python -m skypile.extractors.bounded``) over a pipe and waits at most
``timeout_s`` for the answer; on time-out the helper is killed, the page
becomes a ``extract_timeout`` drop, and the next page starts a fresh helper.
A helper that dies (segfault, out of memory under ``max_memory_mb``) costs its
page an ``extract_crash`` drop, never the worker.

The helper is started lazily and belongs to the process and thread that
started it: a forked worker pool or a Beam worker (which pickles the stage:
handles are not pickled) each start their own, so no global process state is
shared.  Per page the overhead is one pickle each way (the page's bytes there,
its text back: ~0.2 ms against ~30 ms of extraction; the CPU per page with the
helper and in process are level within the noise, ``bench/results/extraction_profile.md``);
the helper's start (~0.3 s of CPU: the extractor's imports, which the worker
itself then never pays) is paid once per worker and after each time-out.  A
helper exits when its parent closes the pipe, so it never outlives the worker.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

_HEADER = struct.Struct("<Q")
_READY = b"R"
START_TIMEOUT_S = 300.0


class Timeout(Exception):
    """The helper did not answer within the bound (it has been killed)."""


class Crash(Exception):
    """The helper died or broke the protocol while working on a page."""


def _write(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise Timeout
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise Crash("helper closed its pipe")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _Helper:
    """One helper process and its two pipe ends."""

    def __init__(self, func: Callable[[Any], Any], max_memory_mb: int, warmup: Any = None):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "skypile.extractors.bounded", str(max_memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.pid = os.getpid()
        # The bound is per page, so the start (imports) is waited for apart, generously.
        try:
            _write(self.proc.stdin.fileno(), pickle.dumps((func, warmup), protocol=pickle.HIGHEST_PROTOCOL))
            ready = _read_exact(self.proc.stdout.fileno(), 1, time.monotonic() + START_TIMEOUT_S) == _READY
        except (Timeout, Crash, OSError):
            ready = False
        if not ready:
            self.kill()
            raise Crash("helper process did not start")

    def call(self, item: Any, timeout_s: float) -> Any:
        _write(self.proc.stdin.fileno(), pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        deadline = time.monotonic() + timeout_s
        out = self.proc.stdout.fileno()
        (n,) = _HEADER.unpack(_read_exact(out, _HEADER.size, deadline))
        ok, value = pickle.loads(_read_exact(out, n, deadline))
        if not ok:
            raise Crash(value)
        return value

    def kill(self) -> None:
        if self.pid != os.getpid():  # inherited through fork: the parent's helper, not ours to kill
            return
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


@dataclass
class BoundedRunner:
    """``runner(item)`` = ``func(item)`` computed in a helper process, or :class:`Timeout` / :class:`Crash`.

    ``func`` must be picklable and must not raise for bad input (the extract
    stage turns every error into a drop); an exception that escapes it is a
    :class:`Crash`.  ``max_memory_mb`` caps the helper's address space (0: no cap).
    """

    func: Callable[[Any], Any]
    timeout_s: float
    max_memory_mb: int = 0
    warmup: Any = None  # an item the helper runs through ``func`` before it counts as started

    def __post_init__(self) -> None:
        self._key: bytes | None = None

    def __getstate__(self) -> dict:
        return {k: self.__dict__[k] for k in ("func", "timeout_s", "max_memory_mb", "warmup")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def key(self) -> bytes:
        """What the helper runs: runners equal in it share one helper."""
        if self._key is None:
            blob = pickle.dumps((self.func, self.max_memory_mb, self.warmup), protocol=pickle.HIGHEST_PROTOCOL)
            self._key = hashlib.sha1(blob).digest()
        return self._key

    def _helper(self) -> _Helper:
        """This process and thread's helper for this function, shared by every runner of it.

        Executors unpickle a fresh copy of the stage for every task; a helper per copy left
        one idle interpreter (~100 MB) behind per task until garbage collection closed its pipe.
        A pipeline has one such function per thread; a benchmark that interleaves several
        extractor variants page by page keeps one helper each (at most ``MAX_HELPERS``, the
        least recently used stopped first) instead of restarting one at every page.
        """
        helpers = _helpers()
        helper = helpers.pop(self.key, None)
        if helper is not None and not (helper.pid == os.getpid() and helper.proc.poll() is None):
            helper.kill()  # dead, or inherited through fork (kill() leaves the parent's alone)
            helper = None
        if helper is None:
            while len(helpers) >= MAX_HELPERS:
                helpers.pop(next(iter(helpers))).kill()
            helper = _Helper(self.func, self.max_memory_mb, self.warmup)
        helpers[self.key] = helper  # (re)inserted last: the most recently used
        return helper

    def __call__(self, item: Any) -> Any:
        helper = self._helper()
        try:
            return helper.call(item, self.timeout_s)
        except (Timeout, Crash, OSError, EOFError, pickle.UnpicklingError) as e:
            helper.kill()
            _helpers().pop(self.key, None)
            if isinstance(e, Timeout):
                raise
            raise Crash(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        helper = _helpers().pop(self.key, None)
        if helper is not None:
            helper.kill()


MAX_HELPERS = 8  # a benchmark interleaves up to ~6 variants; a pipeline needs one
_THREAD = threading.local()  # this thread's helpers: {runner key: _Helper}, least recently used first


def _helpers() -> dict[bytes, _Helper]:
    helpers = getattr(_THREAD, "helpers", None)
    if helpers is None:
        helpers = _THREAD.helpers = {}
    return helpers


def _serve(max_memory_mb: int) -> None:
    """Helper side: read the function, then answer one item at a time until the pipe closes."""
    if max_memory_mb > 0:
        import resource

        limit = max_memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    inp, out = sys.stdin.buffer.fileno(), sys.stdout.buffer.fileno()
    sys.stdout = sys.stderr  # a stray print in the function must not corrupt the protocol
    try:
        (n,) = _HEADER.unpack(_read_exact(inp, _HEADER.size, None))
        func, warmup = pickle.loads(_read_exact(inp, n, None))
        if warmup is not None:  # first-call costs (lazy imports, caches) are start-up, not the first page's
            func(warmup)
        os.write(out, _READY)
        while True:
            (n,) = _HEADER.unpack(_read_exact(inp, _HEADER.size, None))
            item = pickle.loads(_read_exact(inp, n, None))
            try:
                answer = (True, func(item))
            except BaseException as e:  # noqa: BLE001 - reported to the parent as a crash of this item
                answer = (False, f"{type(e).__name__}: {e}"[:500])
            _write(out, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    except Crash:  # the parent closed the pipe: done
        return


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
