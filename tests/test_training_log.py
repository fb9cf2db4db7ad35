"""The interval means of the training log over two real processes (gloo): losses keep NaN, monitors leave it
out, and a name one rank lacks (stage 2's Q term where Q scored nothing) neither hangs nor skews the mean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import ACCELERATE_LAUNCH, REPO, free_port

SCRIPT = """
import json, math, torch
from accelerate import Accelerator
from sr_iqa.train.step import StepOutput
from sr_iqa.train.training_log import IntervalMeans

accelerator = Accelerator(cpu=True)
assert accelerator.num_processes == 2
rank = accelerator.process_index
means = IntervalMeans()
nan = float("nan")
# rank 0: Q scored its crops; rank 1: its first micro-batch had no scorable crop (no l_g_iqa, Q NaN)
means.add(StepOutput({"l_g": torch.tensor(1.0 + rank), **({"l_g_iqa": torch.tensor(-0.5)} if rank == 0 else {})},
                     {"q_niqe": torch.tensor(3.0 if rank == 0 else nan)}))
means.add(StepOutput({"l_g": torch.tensor(3.0 + rank), "l_g_iqa": torch.tensor(-0.25)},
                     {"q_niqe": torch.tensor(5.0)}))
losses, monitors = means.reduce(accelerator)
if rank == 0:
    print("RESULT " + json.dumps([losses, monitors]))
accelerator.end_training()
"""


def test_two_ranks_agree_on_names_and_leave_unscored_q_out(tmp_path: Path):
    script = tmp_path / "means.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [*ACCELERATE_LAUNCH, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", str(free_port()), str(script)],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    losses, monitors = json.loads(next(line for line in result.stdout.splitlines()
                                       if line.startswith("RESULT "))[len("RESULT "):])
    # By hand: l_g (1 + 3 + 2 + 4) / 4; l_g_iqa (-0.5 - 0.25 - 0.25) / 3 (rank 1 had it once);
    # q_niqe (3 + 5 + 5) / 3 (rank 1's NaN left out).
    assert set(losses) == {"l_g", "l_g_iqa"} and set(monitors) == {"q_niqe"}
    assert losses["l_g"] == 2.5 and abs(losses["l_g_iqa"] + 1.0 / 3) < 1e-7
    assert abs(monitors["q_niqe"] - 13.0 / 3) < 1e-6
