"""Forked workers that end with the job that started them.

A DataLoader worker (training's loader, scoring's workers) is a forked child. When its job is SIGKILLed (the OOM
killer, a cluster's preemption), Linux does not end the children: they sleep on, holding the job's files open, until
PyTorch's own watchdog notices, minutes later. ``die_with_parent`` is the workers' ``worker_init_fn``: it asks the
kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the worker the moment the process that forked it ends. On a
system without prctl it does nothing, and the watchdog remains.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(worker_id: int, parent: int) -> None:
    """Called in the worker (``worker_init_fn``); ``parent``: the pid that created the loader."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)


def worker_init(num_workers: int) -> Callable[[int], None] | None:
    """The ``worker_init_fn`` for a loader this process creates now (None without workers)."""
    return functools.partial(die_with_parent, parent=os.getpid()) if num_workers > 0 else None
