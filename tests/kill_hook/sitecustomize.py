"""Kill a whole run at a chosen point (tests/test_kill_resume.py puts this directory on PYTHONPATH).

``SKYPILE_KILL_AT=module:Qual.name:N`` wraps that function in every process of the run (the CLI,
Beam's worker processes) so that its N-th call, counted across processes in the file
``SKYPILE_KILL_COUNT``, sends SIGKILL to the process group: the run dies there, as on a lost machine.
"""

import functools
import importlib
import os
import signal

_spec = os.environ.get("SKYPILE_KILL_AT")
if _spec:
    _module, _qualname, _nth = _spec.split(":")
    _owner = importlib.import_module(_module)
    *_path, _name = _qualname.split(".")
    for _part in _path:
        _owner = getattr(_owner, _part)
    _original = getattr(_owner, _name)

    @functools.wraps(_original)
    def _killing(*args, **kwargs):
        fd = os.open(os.environ["SKYPILE_KILL_COUNT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b".")  # one byte per call, from any process
            calls = os.lseek(fd, 0, os.SEEK_CUR)  # where this append ended: unique per call
        finally:
            os.close(fd)
        if calls >= int(_nth):
            os.killpg(os.getpgrp(), signal.SIGKILL)
        return _original(*args, **kwargs)

    setattr(_owner, _name, _killing)
