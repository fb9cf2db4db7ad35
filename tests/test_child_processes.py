"""Loader workers end with the process that started them: a real DataLoader whose two workers are asleep in
``__getitem__`` (where PyTorch's own watchdog never looks), its process SIGKILLed. Without ``worker_init`` the
workers sleep on for the full minute."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import child_pids, process_alive

PROGRAM = """
import time, torch
from torch.utils.data import DataLoader, Dataset
from sr_iqa.child_processes import worker_init

class Asleep(Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, index):
        time.sleep(60)
        return index

loader = DataLoader(Asleep(), num_workers=2, worker_init_fn={init})
print("start", flush=True)
next(iter(loader))
"""


def _workers_after_kill(init: str) -> list[int]:
    """The loader's workers still alive two seconds after their process was SIGKILLed."""
    job = subprocess.Popen([sys.executable, "-c", PROGRAM.format(init=init)], stdout=subprocess.PIPE, text=True)
    assert job.stdout.readline().strip() == "start"
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [pid for pid in child_pids(job.pid) if process_alive(pid)]
        time.sleep(0.05)
    time.sleep(0.5)  # both inside __getitem__
    job.kill()
    job.wait()
    time.sleep(2)
    alive = [pid for pid in workers if process_alive(pid)]
    for pid in alive:
        subprocess.run(["kill", "-9", str(pid)], check=False)
    return alive


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_loader_workers_die_with_their_sigkilled_process():
    assert _workers_after_kill("worker_init(2)") == []
    assert len(_workers_after_kill("None")) == 2  # the control: without it they sleep on
