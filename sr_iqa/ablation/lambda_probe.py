"""lambda_Q from a probe of gradient norms, fixed before any stage 2: how strongly stage 2's Q term pulls against its
fidelity terms.

On the model stage 2 starts from (the first stage-2 run's stage-1 model, probed after stage 1 and before any stage 2)
and a few training originals (centre crops, LR from the one-stage degradation), the probe measures, with respect to
the SR image, the gradient norm of the fidelity terms of the stage-2 option file (pixel + perceptual, with their
weights) and of Q alone. lambda_Q = share * |grad fidelity| / |grad Q|: with share 1 the Q term pulls on the image
as hard as the fidelity terms do. Measured on the image, not on the weights, the figure is the same for LoRA and
full fine-tuning.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.checked_options import load_options
from sr_iqa.data.demo_set import one_stage_lr
from sr_iqa.data.image_io import read_rgb_tensor
from sr_iqa.errors import OptionsError

PROBE_FILE = "lambda_probe.json"  # in the data set's root


@dataclass(frozen=True)
class LambdaProbe:
    share: float
    fidelity_grad: float  # RMS over the probe images of |d(pixel + perceptual)/d SR|
    q_grad: float  # ... of |d Q / d SR|
    fidelity_loss: float  # the terms' mean values, for the record
    q: float
    images: int
    loss_weight: float  # lambda_Q
    generator: str = ""  # the model probed (a stage-1 run); empty in a record from before it was kept

    def line(self, metric: str) -> str:
        return (f"lambda_Q probe: |grad fidelity| {self.fidelity_grad:.4g}, |grad {metric}| {self.q_grad:.4g} on "
                f"the output of {self.generator or 'the untrained network'} for {self.images} training originals "
                f"(fidelity {self.fidelity_loss:.3f}, {metric} {self.q:.2f}); "
                f"lambda_Q = {self.share:g} x {self.fidelity_grad:.4g} / {self.q_grad:.4g} = {self.loss_weight:.4g}")


def probe_lambda(stage2_file: Path, overrides: list[str], generator: Path, originals: list[Path], share: float,
                 crop: int) -> LambdaProbe:
    from sr_iqa.iqa.metrics import FrozenMetricLoss
    from sr_iqa.losses import IqaObjective, build_perceptual_loss, build_pixel_loss
    from sr_iqa.models.weight_files import generator_from_file

    options = load_options(stage2_file, overrides)
    train = options.train
    if train.iqa_opt is None or train.pixel_opt is None:
        raise ValueError(f"{stage2_file}: the lambda_Q probe needs train.iqa_opt and train.pixel_opt")
    if train.iqa_opt.metric is None:
        raise OptionsError(f"{stage2_file}: the lambda_Q probe measures one metric's gradient; with "
                           "train.iqa_opt.metrics, set experiment.stage2_q_share: null and give "
                           "train.iqa_opt.loss_weight in the option file")
    net, _ = generator_from_file(generator)
    net.eval()
    pixel = build_pixel_loss(train.pixel_opt)
    perceptual = build_perceptual_loss(train.perceptual_opt) if train.perceptual_opt is not None else None
    objective = IqaObjective(FrozenMetricLoss(train.iqa_opt.metric, "cpu", None,
                                              options.iqa.metric_options.get(train.iqa_opt.metric)), 1.0)
    fidelity_grads, q_grads, fidelity_values, q_values = [], [], [], []
    for number, path in enumerate(originals):
        original = read_rgb_tensor(path)
        top, left = (original.shape[-2] - crop) // 2, (original.shape[-1] - crop) // 2
        target = original[:, top:top + crop, left:left + crop][None]
        with torch.no_grad():
            sr = net(one_stage_lr(target[0], options.scale, 0, number)[None]).clamp(0, 1)
        sr.requires_grad_(True)
        fidelity = pixel(sr, target) + (perceptual(sr, target) if perceptual is not None else 0.0)
        (fidelity_grad,) = torch.autograd.grad(fidelity, sr)
        q_term, q = objective(sr)
        if not torch.isfinite(q):
            continue  # Q cannot score this output (a flat image): it does not pull on it
        (q_grad,) = torch.autograd.grad(q_term, sr)
        fidelity_grads.append(float(fidelity_grad.norm()))
        q_grads.append(float(q_grad.norm()))
        fidelity_values.append(float(fidelity.detach()))
        q_values.append(float(q))
    if not q_grads or max(q_grads) == 0:
        raise OptionsError(f"the lambda_Q probe: {train.iqa_opt.metric} cannot score the output of {generator} "
                           f"on any of {len(originals)} training originals; set "
                           "experiment.stage2_q_share: null and give train.iqa_opt.loss_weight in the option file")

    def rms(values: list[float]) -> float:
        return (sum(v * v for v in values) / len(values)) ** 0.5

    fidelity_norm, q_norm = rms(fidelity_grads), rms(q_grads)
    return LambdaProbe(share, fidelity_norm, q_norm, sum(fidelity_values) / len(q_grads),
                       sum(q_values) / len(q_grads), len(q_grads), share * fidelity_norm / q_norm, str(generator))


def read_or_probe(root: Path, share: float, generator: Path, run_probe) -> LambdaProbe:
    """The probe recorded in ``root`` for this share and model, else ``run_probe()`` recorded there: fixed once,
    before any stage 2, and the same for every later invocation."""
    path = root / PROBE_FILE
    if path.is_file():
        recorded = LambdaProbe(**json.loads(path.read_text()))
        if recorded.share == share and recorded.generator == str(generator):
            return recorded
    probe = run_probe()
    write_text_atomically(path, json.dumps(asdict(probe), indent=1))
    return probe
