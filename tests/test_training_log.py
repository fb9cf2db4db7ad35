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
# rank 0: Q scored its crops; rank 1: no scorable crop in the whole interval (no l_g_iqa at all, Q NaN)
for l_g, term, q in ((1.0, -0.5, 3.0), (3.0, -0.25, 5.0)):
    means.add(StepOutput({"l_g": torch.tensor(l_g + rank), **({"l_g_iqa": torch.tensor(term)} if rank == 0 else {})},
                         {"q_niqe": torch.tensor(q if rank == 0 else nan)}))
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
    # By hand: l_g (1 + 3 + 2 + 4) / 4; l_g_iqa (-0.5 - 0.25) / 2 (rank 0's only); q_niqe (3 + 5) / 2 (rank 1's
    # NaNs left out).
    assert losses == {"l_g": 2.5, "l_g_iqa": -0.375} and monitors == {"q_niqe": 4.0}
