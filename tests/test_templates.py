"""options/templates/: a new user's option files for their own manifest data set. Every placeholder left is named
(nothing else in them is wrong), and stage 2 starts from the folder stage 1 trains into (the demo's files do not:
`sr-iqa demo` renames its runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO, run_cli

TEMPLATES = REPO / "options" / "templates"
STAGE1, STAGE2 = TEMPLATES / "stage1_manifest.yml", TEMPLATES / "stage2_lora_manifest.yml"
PLACEHOLDERS = ("datasets.train.manifest", "datasets.val.manifest", "sampler.cache")


def test_a_template_as_shipped_names_each_placeholder_and_nothing_else(tmp_path: Path):
    for template in (STAGE1, STAGE2):
        result = run_cli("train", "-opt", str(template), cwd=tmp_path)
        assert result.returncode == 2
        problems = [line for line in result.stderr.splitlines() if line.startswith(str(template))]
        assert len(problems) == len(PLACEHOLDERS) + (template == STAGE2), result.stderr  # + stage 1's run folder
        for key in PLACEHOLDERS:
            assert f"{template}: '{key}' is still the template's placeholder CHANGE_ME" in result.stderr


def _manifest(folder: Path, images: Path, lr: Path | None = None) -> Path:
    """Every group of an HGGT-layout folder as manifest lines, its images copied below the manifest's folder."""
    shutil.copytree(images, folder / "images")
    if lr is not None:
        shutil.copytree(lr, folder / "lr")
    lines = []
    for original in sorted((images / "original").glob("*.png")):
        gts = [f"images/{slot.name}/{original.name}" for slot in sorted(images.iterdir())
               if slot.name != "original" and (slot / original.name).is_file()]
        entry = {"original": f"images/original/{original.name}", "gts": gts}
        lines.append(json.dumps(entry | ({"lr": f"lr/{original.name}"} if lr is not None else {})))
    (folder / "groups.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "groups.jsonl"


def test_stage2_of_the_templates_starts_from_the_run_stage1_trained(tmp_path: Path, demo_set, pretrained: Path):
    train = _manifest(tmp_path / "train", demo_set.train_images)
    val = _manifest(tmp_path / "val", demo_set.test_images, demo_set.test_lr)
    cache = tmp_path / "scores_niqe.db"
    data = [f"datasets.train.manifest={train}", f"datasets.val.manifest={val}", f"sampler.cache={cache}"]
    small = ["network_g.num_block=1", "path.strict_load_g=false", "datasets.train.gt_size=96",
             "datasets.train.batch_size_per_gpu=1", "datasets.train.num_worker_per_gpu=0", "sampler.grid_stride=32",
             "train.total_iter=1", "train.perceptual_opt=null", "val.val_freq=0", "logger.save_checkpoint_freq=1",
             "logger.use_tb_logger=false"]
    scored = run_cli("score", "-opt", str(STAGE1), *data, "--metric", "niqe", "--grid", "96:32", "--cache", str(cache),
                     "--num-workers", "0", cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-2000:]
    stage1 = run_cli("train", "-opt", str(STAGE1), *data, *small, cwd=tmp_path)
    assert stage1.returncode == 0, stage1.stderr[-2000:]
    stage2 = run_cli("train", "-opt", str(STAGE2), *data, *small[:1], *small[2:], cwd=tmp_path)
    assert stage2.returncode == 0, stage2.stderr[-2000:]
    log = (tmp_path / "experiments" / "my_sr_stage2_lora" / "logs" / "train.log").read_text()
    assert "generator weights from experiments/my_sr_stage1/models/net_g_ema_1.safetensors" in log
    assert (tmp_path / "experiments" / "my_sr_stage2_lora" / "models" / "lora_1.safetensors").is_file()
