"""Stage 2: LoRA adapters on the stage-1 generator trained against an NR-IQA score (NIQE here, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import skimage.data
import torch
import torch.nn.functional as F
from conftest import tiny_options, write_options
from safetensors import safe_open
from safetensors.torch import load_file

from sr_iqa.checked_options import load_options
from sr_iqa.cli import main
from sr_iqa.errors import OptionsError
from sr_iqa.iqa.metrics import FrozenMetricLoss
from sr_iqa.losses import IqaObjective, random_view, transformed_view
from sr_iqa.models.generators import build_generator
from sr_iqa.models.lora import AdapterSettings, add_adapters
from sr_iqa.models.weight_files import generator_from_file, load_upscaler, resolve_weights_file
from sr_iqa.train.trainer import Trainer

TINY_NET = {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
RRDB_TARGETS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _stage2_options(demo_set, experiments: Path, stage1: Path, **lora: object) -> dict:
    options = tiny_options(demo_set, experiments)
    options["name"] = "stage2"
    options["datasets"]["train"]["gt_size"] = 96  # NIQE needs 96-pixel images
    options["path"]["pretrain_network_g"] = str(stage1)
    options["lora"] = {"rank": 2, "alpha": 2, **lora}
    options["train"] |= {"total_iter": 6, "ema_decay": 0, "iqa_opt": {"metric": "niqe", "loss_weight": 0.05}}
    options["val"] |= {"metrics": ["psnr"], "monitor_metrics": ["piqe"]}
    options["logger"]["save_checkpoint_freq"] = 3
    return options


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory, demo_set) -> Path:
    folder = tmp_path_factory.mktemp("stage1")
    options = write_options(folder / "stage1.yml", tiny_options(demo_set, folder / "experiments", total_iter=4))
    return Trainer(load_options(options)).train().root


@pytest.fixture(scope="module")
def stage2(tmp_path_factory: pytest.TempPathFactory, demo_set, stage1: Path) -> Trainer:
    folder = tmp_path_factory.mktemp("stage2")
    options = write_options(folder / "stage2.yml", _stage2_options(demo_set, folder / "experiments", stage1))
    trainer = Trainer(load_options(options))
    trainer.train()
    return trainer


def test_lora_finetuning_leaves_every_backbone_tensor_unchanged(stage1: Path, stage2: Trainer):
    base = load_file(str(resolve_weights_file(stage1)))  # the run folder resolves to its newest EMA weights
    assert resolve_weights_file(stage1).name == "net_g_ema_4.safetensors"
    trained = stage2.accelerator.unwrap_model(stage2.net_g).state_dict()
    backbone = {name.replace(".base_layer", ""): tensor for name, tensor in trained.items() if "lora_" not in name}
    assert backbone.keys() == base.keys()
    for name, tensor in base.items():
        assert torch.equal(backbone[name], tensor), name

    models = stage2.folders.models
    assert sorted(p.name for p in models.iterdir()) == ["lora_3.safetensors", "lora_6.safetensors"]
    adapter = load_file(str(models / "lora_6.safetensors"))
    assert adapter and all("lora_A" in name or "lora_B" in name for name in adapter)
    assert {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in adapter} == set(RRDB_TARGETS)
    # lora_B starts at zero: a non-zero B means the adapters trained.
    assert all(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    with safe_open(str(models / "lora_6.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["sr_iqa.lora"])["rank"] == 2
    assert metadata["sr_iqa.base"] == str(resolve_weights_file(stage1))


def test_validation_reports_the_gaming_gap_and_the_noise_score(stage2: Trainer):
    records = [json.loads(line) for line in stage2.folders.validation_log.read_text().splitlines()]
    final = records[-1]["results"]
    assert records[-1]["iteration"] == 6
    assert {"psnr", "niqe", "piqe", "change/niqe", "change/piqe", "gaming_gap", "structured_noise"} <= final.keys()
    assert final["gaming_gap"] == pytest.approx(final["change/niqe"] - final["change/piqe"])
    assert final["structured_noise"] >= 0
    reference = records[-1]["stage1"]
    assert final["change/niqe"] == pytest.approx(-100 * (final["niqe"] - reference["niqe"]) / reference["niqe"])
    assert final["change/piqe"] == pytest.approx(-100 * (final["piqe"] - reference["piqe"]) / reference["piqe"])


def test_merged_export_gives_the_output_of_base_plus_adapter(stage1: Path, stage2: Trainer, tmp_path: Path):
    adapter = stage2.folders.models / "lora_6.safetensors"
    out = tmp_path / "merged.safetensors"
    assert main(["export", "--checkpoint", str(stage1), "--adapter", str(adapter), "--merge", "--out", str(out)]) == 0
    merged, block = generator_from_file(out)  # the file alone says which network it is
    assert block["type"] == "RRDBNet" and block["num_feat"] == 8
    assert not any("lora_" in name for name in merged.state_dict())
    lq = torch.rand(2, 3, 20, 24)
    with torch.no_grad():
        expected = stage2.accelerator.unwrap_model(stage2.net_g).eval()(lq)
        assert torch.allclose(merged.eval()(lq), expected, atol=1e-5)
        # evaluation and inference load base plus adapter the same way
        assert torch.allclose(load_upscaler(stage1, adapter)[0].eval()(lq), expected, atol=1e-5)
        # and the adapter matters: the base alone differs
        assert not torch.allclose(generator_from_file(stage1)[0].eval()(lq), expected, atol=1e-5)


def test_a_peft_export_loads_with_peft_itself(stage1: Path, stage2: Trainer, tmp_path: Path):
    """PEFT's own loader (PeftModel.from_pretrained) reads the exported folder, and base plus adapter then gives
    the stage-2 network's output: the anchor is PEFT, not sr_iqa's reader."""
    from peft import PeftModel

    adapter = stage2.folders.models / "lora_6.safetensors"
    folder = tmp_path / "peft_adapter"
    assert main(["export", "--checkpoint", str(stage1), "--adapter", str(adapter), "--peft", "--out",
                 str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    base = generator_from_file(stage1)[0]
    peft_model = PeftModel.from_pretrained(base, str(folder)).eval()
    lq = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        expected = stage2.accelerator.unwrap_model(stage2.net_g).eval()(lq)
        assert torch.allclose(peft_model(lq), expected, atol=1e-5)
        assert not torch.allclose(generator_from_file(stage1)[0].eval()(lq), expected, atol=1e-5)


def test_a_peft_export_at_half_strength_equals_the_merged_export_at_half(stage1: Path, stage2: Trainer,
                                                                        tmp_path: Path):
    """--lora-strength reaches the PEFT folder (through lora_alpha): PEFT's own loader then gives what the merged
    export at that strength gives, and not the adapter as trained."""
    from peft import PeftModel

    adapter = str(stage2.folders.models / "lora_6.safetensors")
    assert main(["export", "--checkpoint", str(stage1), "--adapter", adapter, "--peft", "--lora-strength", "0.5",
                 "--out", str(tmp_path / "peft")]) == 0
    assert main(["export", "--checkpoint", str(stage1), "--adapter", adapter, "--merge", "--lora-strength", "0.5",
                 "--out", str(tmp_path / "half.safetensors")]) == 0
    peft_model = PeftModel.from_pretrained(generator_from_file(stage1)[0], str(tmp_path / "peft")).eval()
    lq = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        half = generator_from_file(tmp_path / "half.safetensors")[0].eval()(lq)
        full = stage2.accelerator.unwrap_model(stage2.net_g).eval()(lq)
        base = generator_from_file(stage1)[0].eval()(lq)
    update = (full - base).abs().max()  # six iterations from B = 0: a small update, so compared with itself
    assert update > 0 and (peft_model(lq) - half).abs().max() < 0.01 * update
    assert (peft_model(lq) - full).abs().max() > 0.4 * update  # half of the update, not all of it


def test_export_refuses_what_it_cannot_merge(stage1: Path, stage2: Trainer, tmp_path: Path,
                                             capsys: pytest.CaptureFixture):
    adapter = str(stage2.folders.models / "lora_6.safetensors")
    assert main(["export", "--checkpoint", str(stage1), "--adapter", adapter, "--out", str(tmp_path / "x")]) == 2
    assert "--adapter needs --merge (a generator with the adapter folded in) or --peft" in capsys.readouterr().err
    not_an_adapter = str(resolve_weights_file(stage1))
    assert main(["export", "--checkpoint", str(stage1), "--adapter", not_an_adapter, "--merge",
                 "--out", str(tmp_path / "x")]) == 2
    assert "is not an sr_iqa LoRA adapter" in capsys.readouterr().err
    other_base = tmp_path / "other.safetensors"
    from sr_iqa.models.weight_files import generator_metadata
    from sr_iqa.tensor_files import save_weights

    block = {**TINY_NET, "num_feat": 16, "scale": 4}
    save_weights(build_generator(block, 4), other_base, generator_metadata(block))
    assert main(["export", "--checkpoint", str(other_base), "--adapter", adapter, "--merge",
                 "--out", str(tmp_path / "x")]) == 2
    assert "different network_g" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _tiny_lora_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return add_adapters(build_generator(TINY_NET, 4), AdapterSettings(2, 2.0, 0.0, RRDB_TARGETS))


def _photo_lq(size: int = 96) -> torch.Tensor:
    photo = torch.from_numpy(skimage.data.astronaut().copy()).permute(2, 0, 1).float()[None] / 255
    gt = photo[..., 100:100 + size, 150:150 + size]
    return F.interpolate(gt, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)


def _residual_sr(net: torch.nn.Module, lq: torch.Tensor) -> torch.Tensor:
    """Bicubic plus the tiny untrained network: a photo-like SR from the first step (a random RRDB alone may
    output a flat image, which NIQE cannot score)."""
    return F.interpolate(lq, scale_factor=4, mode="bicubic", align_corners=False) + net(lq)


def test_the_iqa_gradient_reaches_the_adapters_and_nothing_else():
    net = _tiny_lora_net()
    objective = IqaObjective(FrozenMetricLoss("niqe"), loss_weight=1.0)
    loss, _ = objective(_residual_sr(net, _photo_lq(192)))
    loss.backward()
    for name, parameter in net.named_parameters():
        if "lora_B" in name:  # B = 0 at the start, so A's gradient is zero until B moves; B's is not
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        elif "lora_" not in name:
            assert not parameter.requires_grad and parameter.grad is None, name
    assert all(not p.requires_grad for p in objective.parameters())  # Q stays frozen


def _q_after_steps(metric: torch.nn.Module, sign: float, steps: int = 5, step_size: float = 0.5
                   ) -> tuple[float, float]:
    """Q before and after plain normalised gradient steps of stage 2's term on the adapters (no optimizer
    tricks); ``sign`` -1 flips the term, the control."""
    net = _tiny_lora_net()
    objective = IqaObjective(metric, loss_weight=1.0)
    objective.sign *= sign
    lq = _photo_lq(192)
    adapters = [p for p in net.parameters() if p.requires_grad]
    with torch.no_grad():
        first = objective(_residual_sr(net, lq))[1].item()
    for _ in range(steps):
        loss, _ = objective(_residual_sr(net, lq))
        grads = torch.autograd.grad(loss, adapters)
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        with torch.no_grad():
            for parameter, grad in zip(adapters, grads, strict=True):
                parameter -= step_size * grad / norm
    with torch.no_grad():
        return first, objective(_residual_sr(net, lq))[1].item()


class MeanBrightness(torch.nn.Module):
    """A higher-is-better Q whose direction needs no metric's word for it: the mean grey level."""

    lower_better = False

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.mean(dim=(1, 2, 3))


def test_the_sign_is_right_a_few_steps_lower_niqe():
    # pyiqa's NIQE rounds to 8-bit grey levels, so steps must be large enough to move pixels across levels.
    first, final = _q_after_steps(FrozenMetricLoss("niqe"), sign=1.0)
    assert final < first - 0.02
    first, final = _q_after_steps(FrozenMetricLoss("niqe"), sign=-1.0)  # the control: the wrong sign, worse
    assert final > first + 0.02


def test_the_sign_is_right_for_a_higher_better_q_it_rises():
    first, final = _q_after_steps(MeanBrightness(), sign=1.0, step_size=2.0)
    assert final > first + 0.01  # about 0.414 -> 0.432 grey
    first, final = _q_after_steps(MeanBrightness(), sign=-1.0, step_size=2.0)  # the control: darker
    assert final < first - 0.01


def test_the_loss_term_is_minus_q_for_higher_better_and_plus_q_for_lower_better():
    photo = F.interpolate(_photo_lq(192), scale_factor=4, mode="bicubic").clamp(0, 1)
    image = torch.cat([photo, photo.flip(-1) * 0.9 + 0.05])
    for name in ("niqe", "entropy"):
        metric = FrozenMetricLoss(name)
        term, q = IqaObjective(metric, loss_weight=0.3)(image)
        direct = metric(image).float().mean()
        assert q == pytest.approx(direct.item(), rel=1e-6)
        assert term.item() == pytest.approx((0.3 if metric.lower_better else -0.3) * direct.item(), rel=1e-6)
    assert FrozenMetricLoss("niqe").lower_better and not FrozenMetricLoss("entropy").lower_better


def test_images_the_metric_cannot_score_are_left_out_of_the_term():
    objective = IqaObjective(FrozenMetricLoss("niqe"), loss_weight=1.0)
    photo = F.interpolate(_photo_lq(192), scale_factor=4, mode="bicubic").clamp(0, 1)
    flat = torch.zeros_like(photo)  # no finite NIQE features: pyiqa's pinv fails on the whole batch
    alone = objective(photo)[1]
    batch = torch.cat([photo, flat]).requires_grad_(True)
    term, q = objective(batch)
    assert q.item() == pytest.approx(alone.item(), rel=1e-5) and objective.skipped == 1
    term.backward()
    assert batch.grad[0].abs().sum() > 0 and batch.grad[1].abs().sum() == 0
    term, q = objective(flat)
    assert term.item() == 0.0 and torch.isnan(q) and objective.skipped == 2


def test_transformed_view_flips_shifts_and_upscales():
    image = torch.rand(2, 3, 40, 32)
    assert torch.equal(transformed_view(image, True, 0, 0, 1.0, 4), image.flip(-1))
    shifted = transformed_view(image, False, 2, -3, 1.0, 4)  # content moves down 2, left 3
    assert torch.equal(shifted[..., 2:, :-3], image[..., :-2, 3:])
    assert transformed_view(image, False, 0, 0, 1.25, 4).shape[-2:] == (50, 40)


def test_random_view_draws_its_upscale_uniformly():
    image = torch.rand(1, 3, 96, 80)
    torch.manual_seed(0)
    draws = 400
    widths = [random_view(image).shape[-1] for _ in range(draws)]
    assert all(80 <= width <= 100 for width in widths)
    # factor = 1 + U * 0.25 with U uniform: the width grows past 80 once U >= 1 / (80 * 0.25)
    expected = 1 - 1 / (80 * 0.25)
    assert sum(width > 80 for width in widths) / draws == pytest.approx(expected, abs=5 * (expected * (1 - expected)
                                                                                          / draws) ** 0.5)
    # Q sees the view: with augmentation the objective differs from the plain one on the same image.
    metric = FrozenMetricLoss("niqe")
    photo = _photo_lq(384)
    plain = IqaObjective(metric, 1.0)(photo)[1].item()
    augmented = {round(IqaObjective(metric, 1.0, augment=True)(photo)[1].item(), 4) for _ in range(4)}
    assert len(augmented) > 1 and round(plain, 4) not in augmented


def test_lora_resume_gives_the_same_adapters_as_an_uninterrupted_run(tmp_path: Path, demo_set, stage1: Path):
    options_file = write_options(tmp_path / "s2.yml", _stage2_options(demo_set, tmp_path / "experiments", stage1))

    def run(*overrides: str) -> Path:
        return Trainer(load_options(options_file, ["val.monitor_metrics=[]", *overrides])).train().root

    straight = run("name=straight")
    run("name=resumed", "train.total_iter=3")
    resumed = run("name=resumed", "path.resume_state=auto")
    a, b = (load_file(str(r / "models" / "lora_6.safetensors")) for r in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], load_file(str(resumed / "models" / "lora_3.safetensors"))[k]) for k in a)


def test_validating_against_stage1_does_not_change_the_training(tmp_path: Path, demo_set, stage1: Path):
    options_file = write_options(tmp_path / "s2.yml", _stage2_options(demo_set, tmp_path / "experiments", stage1))
    quiet = Trainer(load_options(options_file, ["name=quiet", "val.val_freq=0"])).train().root
    validated = Trainer(load_options(options_file, ["name=validated", "val.val_freq=2"])).train().root
    assert len(validated.joinpath("logs", "validation.jsonl").read_text().splitlines()) == 3
    a, b = (load_file(str(run / "models" / "lora_6.safetensors")) for run in (quiet, validated))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_lora_option_errors_stop_before_anything_is_written(tmp_path: Path, demo_set, stage1: Path):
    options = _stage2_options(demo_set, tmp_path / "experiments", stage1, target_modules=["conv6"])
    with pytest.raises(OptionsError, match="no Linear or Conv2d layer named 'conv6'"):
        Trainer(load_options(write_options(tmp_path / "bad.yml", options)))
    assert not (tmp_path / "experiments").exists()
    options["lora"]["target_modules"] = None
    options["path"]["pretrain_network_g"] = None
    with pytest.raises(OptionsError, match="set 'path.pretrain_network_g'"):
        load_options(write_options(tmp_path / "bad.yml", options))
    options["path"]["pretrain_network_g"] = str(tmp_path / "missing_run")
    with pytest.raises(OptionsError, match="missing_run"):
        Trainer(load_options(write_options(tmp_path / "bad.yml", options)))
    assert not (tmp_path / "experiments").exists()
