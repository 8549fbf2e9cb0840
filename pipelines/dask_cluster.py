"""A Dask cluster on this machine's loopback: ``dask scheduler`` + N ``dask worker`` processes.

For the tests and benchmarks that run Beam on Dask across real process
boundaries, and for trying ``--runner DaskRunner`` before a real cluster::

    with LocalDaskCluster(workers=2) as cluster:
        skypile run ... --runner DaskRunner --dask_client_address {cluster.address}

Every process is started in one new process group (the scheduler's), so
:meth:`stop` ends all of them, the workers' nanny children included, even when
the caller failed half way; ports are chosen by the processes themselves
(``:0``) and read back from the scheduler file, so parallel clusters never race
for one.  Only 127.0.0.1 is listened on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def _dask_command() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


class LocalDaskCluster:
    """``workers`` worker processes of ``threads`` threads each; ``env`` is added to every process's environment."""

    def __init__(self, workers: int = 2, threads: int = 1, env: dict[str, str] | None = None, memory_limit: str = "0",
                 timeout_s: float = 120.0, log_dir: str | None = None):
        self.workers, self.threads, self.memory_limit, self.timeout_s = workers, threads, memory_limit, timeout_s
        self.env = {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen] = []
        self._tmp = tempfile.mkdtemp(prefix="skypile-dask-")
        self.log_dir = log_dir or self._tmp
        self.scheduler_file = os.path.join(self._tmp, "scheduler.json")
        self.address = ""

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        group = {"process_group": self.procs[0].pid if self.procs else 0}
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")
        try:
            proc = subprocess.Popen([*_dask_command(), *args], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                    cwd=self._tmp, **group)
        finally:
            log.close()
        self.procs.append(proc)
        return proc

    def start(self) -> "LocalDaskCluster":
        try:
            self._start(["scheduler", "--host", HOST, "--port", "0", "--no-dashboard", "--scheduler-file", self.scheduler_file],
                        "scheduler")
            self.address = self._wait(lambda: self._scheduler_address(), "the scheduler to start")
            for i in range(self.workers):
                self._start(["worker", "--scheduler-file", self.scheduler_file, "--host", HOST, "--nthreads", str(self.threads),
                             "--nworkers", "1", "--no-dashboard", "--memory-limit", self.memory_limit,
                             "--local-directory", os.path.join(self._tmp, f"worker-{i}"), "--name", f"worker-{i}"],
                            f"worker-{i}")
            self._wait(lambda: self.connected_workers() >= self.workers or None, f"{self.workers} workers to connect")
        except BaseException:
            self.stop()
            raise
        return self

    def _scheduler_address(self) -> str | None:
        try:
            return json.loads(Path(self.scheduler_file).read_text())["address"]
        except (OSError, ValueError, KeyError):
            return None

    def connected_workers(self) -> int:
        from distributed import Client

        with Client(self.address, timeout=10) as client:
            return len(client.scheduler_info(n_workers=-1)["workers"])

    def _wait(self, probe: Any, what: str) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            dead = [p.args[1] for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"dask {dead[0]} exited while waiting for {what}: {self.logs()}")
            value = probe()
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {self.timeout_s:.0f} s waiting for {what}: {self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for f in sorted(Path(self.log_dir).glob("*.log")):
            out.append(f"--- {f.name}\n{f.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        """End every process of the cluster (SIGTERM to the group, SIGKILL after 10 s)."""
        if self.procs:
            group = self.procs[0].pid
            for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline and _group_alive(group):
                    for p in self.procs:
                        p.poll()
                    time.sleep(0.1)
                if not _group_alive(group):
                    break
            for p in self.procs:
                p.wait(timeout=10)
            self.procs = []
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "LocalDaskCluster":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
