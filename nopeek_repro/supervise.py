"""The stage runner's process supervision: a stage stops, and leaves nothing half-written, when whoever
started it goes away.

Contract (Linux; elsewhere only the signal handlers are installed):

* The **owner** is the process that started the runner: its parent, or, when the parent is a shell run
  as ``sh -c CMD`` (DVC runs every stage's ``cmd`` through ``$SHELL`` or ``/bin/sh``, and ``dash`` does
  not ``exec`` a lone command), the shell's parent, i.e. ``dvc`` itself.
* SIGTERM, SIGINT, or the owner's death (``prctl(PR_SET_PDEATHSIG)`` for the parent, plus a watcher that
  polls every :data:`POLL_S` seconds for a ``-c`` shell's parent, comparing start times so that a reused
  pid does not count as alive) all mean *stop*.
* The first *stop* interrupts the notebook's kernel (SIGINT to the runner's child processes), so papermill
  ends as after a failing cell. ipykernel ignores SIGINT between cells and while it starts; if the kernel
  is still there :data:`GRACE_S` seconds later, or at a second *stop*, the runner raises
  :class:`KeyboardInterrupt` itself. :func:`stop_requested` stays true afterwards, so a stage whose
  notebook still finished is treated as interrupted by :func:`nopeek_repro.pipeline.run_stage`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.5
"""How often the watcher checks that a ``-c`` shell's parent is still alive."""
GRACE_S = 10.0
"""How long the kernel gets to end its cell after the first stop before the runner raises itself."""
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish"})

_asked: list[int] = []


def stop_requested() -> bool:
    """Whether this process was asked to stop (signal or owner gone) since :func:`end_with_owner`."""
    return bool(_asked)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid`` from /proc, or None when it is gone (or a zombie:
    ended, not yet reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[1]), int(fields[19]))


def children() -> list[int]:
    """The process ids whose parent is this process (Linux /proc; empty elsewhere)."""
    me, kids = os.getpid(), []
    for proc in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(proc.name))
        if stat is not None and stat[0] == me:
            kids.append(int(proc.name))
    return kids


def _is_c_shell(pid: int) -> bool:
    """Whether ``pid`` is a shell running one command string (``sh -c CMD``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    name = os.path.basename(argv[0].decode(errors="replace")).lstrip("-")
    return name in SHELLS and b"-c" in argv[1:]


def owner() -> tuple[int, int] | None:
    """(pid, start time) of the process this runner belongs to: see the module's contract."""
    parent = os.getppid()
    if parent <= 1 or not _is_c_shell(parent):
        return None  # the parent itself: PR_SET_PDEATHSIG covers it
    stat = _stat(parent)
    if stat is None or stat[0] <= 1:
        return None
    grand = _stat(stat[0])
    return (stat[0], grand[1]) if grand is not None else None


def _watch(pid: int, started: int) -> None:
    while True:
        time.sleep(POLL_S)
        stat = _stat(pid)
        if stat is None or stat[1] != started:
            os.kill(os.getpid(), signal.SIGTERM)
            return


def _stop(signum: int, frame: object) -> None:
    """First stop: interrupt the kernel's running cell and arm the fallback; a later one, or no kernel
    yet: raise here at once."""
    kids = children()
    first = not _asked
    _asked.append(signum)
    if kids and first:
        for pid in kids:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                continue
        signal.setitimer(signal.ITIMER_REAL, GRACE_S)
        return
    raise KeyboardInterrupt


def end_with_owner() -> None:
    """Install the handlers and the watchers of the module's contract (call once, in the main thread)."""
    _asked.clear()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(signum, _stop)
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the call
        raise KeyboardInterrupt
    found = owner()
    if found is not None:
        threading.Thread(target=_watch, args=found, name="owner-watch", daemon=True).start()


@contextmanager
def held() -> Iterator[None]:
    """Clean-up that must not be cut short: cancel the fallback timer and ignore SIGINT and SIGTERM inside,
    restoring the previous handlers after (a no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def end_children() -> None:
    """SIGKILL what this process still runs (a kernel that outlived papermill's shutdown), and reap it, so
    nothing writes into outputs that are about to be removed."""
    for pid in children():
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            continue


__all__ = ["children", "end_children", "end_with_owner", "held", "owner", "stop_requested"]
