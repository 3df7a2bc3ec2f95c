"""A Ray cluster lost mid-run (its raylet, a node, the client connection): one line that
says so and that running the same command again resumes, with its own exit status.

The driver commits every batch to the store as it arrives, so what finished before the
loss is kept and a re-run redoes only the missing work. Ray reports a lost cluster in
two ways, and both end here:

- as a Python exception from a Ray call (`RaySystemError`, `LocalRayletDiedError`,
  `NodeDiedError`, `ObjectLostError`, ..., or `ConnectionError` through Ray Client):
  `lost_cluster(exc)` turns it into `ClusterLost`, which the entry point prints as one
  line with exit status EXIT_CLUSTER_LOST;
- by ending the driver process itself: when this machine's raylet dies, Ray's core
  worker exits the process (status 1, Ray's log lines only) at its next object-store
  call. `RayletWatch` sees the raylet go first, prints the same line and exits with
  EXIT_CLUSTER_LOST, as a killed driver would, which the store tolerates by design.

Example:
    >>> lost_cluster(ValueError("a plugin's bug")) is None
    True
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable

from autojudge.errors import AutojudgeError

#: exit status of a run whose Ray cluster went away (EX_TEMPFAIL: try again)
EXIT_CLUSTER_LOST = 75
RESUME_HINT = ("the work finished so far is in the store: run the same command again to "
               "resume (only the missing work is redone)")
#: ray.exceptions that mean the cluster, a node, its raylet or its object store is gone
#: (a dead actor is a RayActorError, which the pool answers by resending its batches)
_LOST_ERRORS = ("RaySystemError", "LocalRayletDiedError", "NodeDiedError",
                "WorkerCrashedError", "ObjectLostError", "OwnerDiedError",
                "ObjectFetchTimedOutError", "ObjectReconstructionFailedError")


class ClusterLost(AutojudgeError):
    """The Ray cluster went away mid-run; the entry point exits with `exit_code`."""

    exit_code = EXIT_CLUSTER_LOST


def _one_line(text: Any, limit: int = 200) -> str:
    return " ".join(str(text).split())[:limit]


def message(what: str) -> str:
    return f"executor=ray: lost the Ray cluster mid-run ({what}); {RESUME_HINT}"


def lost_cluster(exc: BaseException, via_client: bool = False) -> ClusterLost | None:
    """`exc` as ClusterLost when it says the cluster is gone, else None. A
    ConnectionError counts only through Ray Client (`via_client`): elsewhere it may be
    the store's own storage, which is not Ray's to report."""
    import ray.exceptions

    lost = tuple(getattr(ray.exceptions, name) for name in _LOST_ERRORS
                 if hasattr(ray.exceptions, name))
    if isinstance(exc, ray.exceptions.RayTaskError):
        return None  # a plugin's own exception, raised in a worker
    if isinstance(exc, lost) or (via_client and isinstance(exc, ConnectionError)):
        return ClusterLost(message(f"{type(exc).__name__}: {_one_line(exc)}"))
    return None


def raylet_probe() -> tuple[int, Callable[[], bool]] | None:
    """(pid, is-alive check) of the raylet this driver talks to: the one this process
    started (a local Ray), else the process that serves this node's raylet socket
    (a cluster joined with address=auto or host:port). None when there is none to
    watch (Ray Client: the driver's cluster is elsewhere)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return None
    started = (getattr(node, "all_processes", None) or {}).get("raylet")
    if started:
        popen = started[0].process
        return popen.pid, lambda: popen.poll() is None
    try:
        import psutil
    except ImportError:  # the cluster's raylet can't be found; Ray's own errors remain
        return None
    socket = str(getattr(node, "raylet_socket_name", "") or "")
    for proc in psutil.process_iter(["name", "cmdline"]):
        if "raylet" in (proc.info["name"] or "") and socket and \
                socket in " ".join(proc.info["cmdline"] or ()):
            return proc.pid, lambda p=proc: p.is_running() and \
                p.status() != psutil.STATUS_ZOMBIE
    return None


class RayletWatch:
    """A daemon thread that ends the driver with one line and EXIT_CLUSTER_LOST when
    the raylet dies while the executor is open (see the module docstring)."""

    def __init__(self, poll_s: float = 0.05,
                 on_lost: Callable[[str], None] | None = None):
        self.poll_s = poll_s
        self.on_lost = on_lost or _exit_lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Watch this driver's raylet; False when there is none to watch."""
        probe = raylet_probe()
        if probe is None:
            return False
        pid, alive = probe
        self._thread = threading.Thread(target=self._run, args=(pid, alive),
                                        name="autojudge-raylet-watch", daemon=True)
        self._thread.start()
        return True

    def _run(self, pid: int, alive: Callable[[], bool]) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                up = alive()
            except Exception:  # noqa: BLE001  psutil: the process is gone
                up = False
            if not up and not self._stop.is_set():
                self.on_lost(message(f"this machine's raylet, pid {pid}, died"))
                return

    def stop(self) -> None:
        """Before Ray is shut down on purpose (which stops the raylet)."""
        self._stop.set()


def _exit_lost(text: str) -> None:
    """Print the line and end the process now: Ray's core worker would otherwise end it
    with status 1 at its next object-store call, before any handler runs."""
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()
    os._exit(EXIT_CLUSTER_LOST)
