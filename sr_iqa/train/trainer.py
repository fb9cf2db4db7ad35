"""One training run on HuggingFace Accelerate: the set-up recipe and the loop.

The same code runs on one CPU, one GPU, or many processes (``accelerate launch``). The parts live beside it:
the data and loader (training_data.py), the micro-batch step (step.py), the lr warm-up (warmup.py), what is
logged (training_log.py, trackers.py), validation (validation.py), saving and resuming (training_state.py).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from sr_iqa import writer_lock
from sr_iqa.atomic_files import write_text_atomically
from sr_iqa.config import Options, options_to_yaml
from sr_iqa.config.call_options import build_from_block
from sr_iqa.config.q_metrics import q_name, weighted_metrics
from sr_iqa.config.schema import MixedPrecision
from sr_iqa.data.degradations import DEGRADATION_TYPES
from sr_iqa.data.device_prefetch import DevicePrefetcher
from sr_iqa.errors import OptionsError
from sr_iqa.evaluate.metric_set import MetricSet, Upscaler
from sr_iqa.iqa.combined_q import SCALES_FILE, CombinedQ, write_scales
from sr_iqa.iqa.metrics import FrozenMetricLoss, require_gradient
from sr_iqa.iqa.weights import weights_folder
from sr_iqa.log_buffer import RunLogFile, replay_startup_log
from sr_iqa.losses import (
    IqaObjective,
    build_negative_loss,
    build_perceptual_loss,
    build_pixel_loss,
    build_rank_loss,
)
from sr_iqa.main_process import built_on_main
from sr_iqa.models.generators import build_generator
from sr_iqa.models.lora import AdapterSettings, add_adapters
from sr_iqa.models.weight_files import load_network_weights
from sr_iqa.optim import build_optimizer, build_scheduler
from sr_iqa.progress import progress_bar
from sr_iqa.sampling.online_amo import OnlineAmo, is_online_amo
from sr_iqa.sampling.q_scales import OBJECTIVE, SAMPLER
from sr_iqa.sampling.statistics import SamplingStatistics
from sr_iqa.train import checkpoints, resume_check, speed, trackers, training_data, training_log, training_state
from sr_iqa.train.discriminator_parts import discriminator_parts
from sr_iqa.train.experiment import ExperimentFolders
from sr_iqa.train.pair_pool import TrainingPairPool
from sr_iqa.train.stage1_reference import Stage1Reference
from sr_iqa.train.step import StepOutput, TrainingStep
from sr_iqa.train.stopping import StopOnInterrupt, stop_requested
from sr_iqa.train.training_log import IntervalMeans
from sr_iqa.train.validation import Validation, validation_sets
from sr_iqa.train.warmup import LinearWarmup, with_warmup

log = logging.getLogger("sr_iqa.train")


class TrainingProgress:
    """The iteration counter; saved with the training state (``progress.json``), it is also the data position."""

    def __init__(self) -> None:
        self.iteration = 0


class Trainer:
    """Training of a basicsr generator. Stage 1: pixel, perceptual, GAN and negative-GT losses against the GT
    the sampler chose. Stage 2 is the same loop with ``train.iqa_opt`` (the -lambda_Q * Q term) and, with
    ``lora``, only the adapters trainable; its validations also measure the change against stage 1."""

    def __init__(self, options: Options, source: str = "options") -> None:
        """The set-up, in the order it runs; each step sets the attributes it names. Everything that can fail on
        bad input (data, weights, LoRA targets, a saved state that cannot be resumed) runs before the first write
        to the run folder (options.yml, the log, the W&B id, q_normalisation.json, the trackers); the run lock,
        taken before the saved state is read, is released when any of it fails."""
        self.options = options
        self.source = source
        self.folders = ExperimentFolders(Path(options.path.experiments_root) / options.name)
        self.log_file = None
        self.lr_used = float("nan")  # the lr the last iteration stepped with (what the logs show)
        resume_from = self._setup_resume()
        self._setup_accelerator(resuming=resume_from is not None)
        self._setup_data(resuming=resume_from is not None)
        self._setup_metrics_and_objectives()
        net_g = self._setup_generator()
        self._setup_model(net_g)
        self._setup_run_lock()
        try:
            self._setup_resumed_state(resume_from)
            self._create_run_folder()
            self._setup_loader()
            self._setup_statistics()
        except BaseException:
            writer_lock.release(self.run_lock)  # held by the main process only; a no-op elsewhere
            raise

    # ----- set-up, in the order __init__ runs it ----------------------------------------------------

    def _setup_resume(self) -> Path | None:
        """The training state to resume from (None: a new run), its saved options checked against these."""
        resume_from = training_state.resume_folder(self.options, self.folders)
        if resume_from is not None:
            resume_check.check_changed_options(self.options, resume_from)
        return resume_from

    def _setup_accelerator(self, resuming: bool) -> None:
        """Sets precision, accelerator (its trackers not started), device, progress, wandb_run_id: backend flags,
        the resolved precision, Accelerate with the process-group timeout."""
        options = self.options
        use_cpu = not torch.cuda.is_available()
        if use_cpu and options.train.mixed_precision is MixedPrecision.fp16:
            raise OptionsError(f"{self.source}: 'train.mixed_precision' is fp16, which needs a GPU; "
                               "use bf16 or no on the CPU")
        self.wandb_run_id = trackers.wandb_run_id(options.logger, self.folders.logs, resuming)
        speed.set_backend_flags(options.train)
        self.precision = speed.resolved_precision(options.train.mixed_precision,
                                                  torch.device("cpu" if use_cpu else "cuda"))
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision=self.precision,
            gradient_accumulation_steps=options.train.gradient_accumulation_steps,
            step_scheduler_with_optimizer=False,  # one scheduler step per iteration, as in BasicSR
            log_with=trackers.make_trackers(options, self.folders.logs, self.wandb_run_id) or None,
            project_config=ProjectConfiguration(project_dir=str(self.folders.root),
                                                logging_dir=str(self.folders.logs)),
            kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=options.train.process_group_timeout))],
        )
        self.device = self.accelerator.device
        self.progress = TrainingProgress()

    def _setup_data(self, resuming: bool) -> None:
        """Sets degradation, train_set, q_scales (the normalisation of each Q made of several metrics; a resumed
        run's recorded ones), online_amo, validation_sets, val_set (the main one, or None)."""
        options = self.options
        self.degradation = build_from_block(options.degradation, DEGRADATION_TYPES)
        self.train_set, self.q_scales = training_data.training_set(
            options, self.accelerator, self.degradation.sample_kernels, with_candidates=is_online_amo(options.sampler),
            recorded_scales=self.folders.root / SCALES_FILE if resuming else None)
        self.online_amo = OnlineAmo.from_options(options.sampler, options.iqa, self.device,  # None unless online
                                                 self.q_scales.get(SAMPLER))
        self.validation_sets = validation_sets(options, self.accelerator)  # every process validates its share
        self.val_set = next((s.dataset for s in self.validation_sets if s.main), None)

    def _setup_metrics_and_objectives(self) -> None:
        """Sets metric_set, perceptual_loss, iqa_objective: built before anything is written, so that missing
        metric or backbone weights stop the run at once."""
        options = self.options
        weights_dir = weights_folder(None, options.iqa)
        self.metric_set = None
        if self.validation_sets:
            self.metric_set = MetricSet(self._validation_metrics(), self.device, weights_dir,
                                        options.iqa.metric_options)
        self.perceptual_loss = None  # frozen, in eval, outside DDP: nothing to synchronise
        if options.train.perceptual_opt is not None:
            self.perceptual_loss = build_perceptual_loss(options.train.perceptual_opt, weights_dir).to(self.device)
        self.iqa_objective = None  # stage 2's Q: frozen, in eval, outside DDP, like the perceptual loss
        iqa_opt = options.train.iqa_opt
        if iqa_opt is not None:  # one metric's loss form, or several normalised and summed (train.iqa_opt.metrics)
            losses = {name: FrozenMetricLoss(name, self.device, weights_dir, options.iqa.metric_options.get(name))
                      for name in weighted_metrics(iqa_opt)}
            key = "train.iqa_opt.metric" if iqa_opt.metric is not None else "train.iqa_opt.metrics"
            for name, loss in losses.items():  # a term without a gradient would train on the others alone
                require_gradient(loss, name, options.datasets.train.gt_size, key, self.device)
            scales = self.q_scales.get(OBJECTIVE)
            metric = CombinedQ(losses, scales) if scales else losses[iqa_opt.metric]
            self.iqa_objective = IqaObjective(metric, iqa_opt.loss_weight, iqa_opt.augment)

    def _setup_generator(self) -> torch.nn.Module:
        """Sets pretrained_g, adapter_settings; returns the generator with its pretrained weights and, in stage 2,
        the LoRA adapters (backbone frozen). Wrong weights or LoRA targets stop the run before it writes."""
        options = self.options
        set_seed(options.manual_seed)
        net_g = build_generator(options.network_g, options.scale)
        self.pretrained_g = None
        if options.path.pretrain_network_g:
            self.pretrained_g = load_network_weights(net_g, options.path.pretrain_network_g,
                                                     options.path.strict_load_g, options.path.param_key_g)
        self.adapter_settings = None
        if options.lora is not None and options.lora.enabled:
            self.adapter_settings = AdapterSettings.from_options(options.lora, options.network_g["type"])
            net_g = add_adapters(net_g, self.adapter_settings)
        return net_g

    def _setup_model(self, net_g: torch.nn.Module) -> None:
        """Sets net_g, optimizer, scheduler (prepared by Accelerate), the GAN parts (net_d, optimizer_d,
        scheduler_d, gan_loss), step (the micro-batch's losses and steps), pair_pool, ema; compiles in place when
        asked. The schedulers carry the warm-up (train.warmup_iter)."""
        options = self.options
        if self.pretrained_g is not None:  # logged here, once the run's log file exists
            log.info("generator weights from %s", self.pretrained_g)
        if self.adapter_settings is not None:
            log.info("LoRA rank %d on %s: %d trainable of %d generator parameters", self.adapter_settings.rank,
                     ", ".join(self.adapter_settings.target_modules),
                     sum(p.numel() for p in net_g.parameters() if p.requires_grad),
                     sum(p.numel() for p in net_g.parameters()))
        net_g.to(memory_format=speed.memory_format(options.train))
        # Only trainable tensors reach the optimizer (all of them in stage 1, the adapters under LoRA).
        optimizer = build_optimizer(options.train.optim_g, net_g.parameters())
        scheduler = build_scheduler(options.train.scheduler, optimizer)
        self.net_g, self.optimizer, self.scheduler = self.accelerator.prepare(net_g, optimizer, scheduler)
        self.net_d, self.optimizer_d, self.scheduler_d, self.gan_loss = discriminator_parts(options, self.accelerator)
        # BasicSR's warm-up in front of each scheduler (the prepared ones are what save_state saves).
        self.scheduler = with_warmup(self.scheduler, self.optimizer, options.train.warmup_iter)
        if self.scheduler_d is not None:
            self.scheduler_d = with_warmup(self.scheduler_d, self.optimizer_d, options.train.warmup_iter)
        self.step = TrainingStep(
            self.accelerator, self.net_g, self.optimizer, build_pixel_loss(options.train.pixel_opt).to(self.device),
            perceptual_loss=self.perceptual_loss, iqa_objective=self.iqa_objective,
            iqa_metric=q_name(options.train.iqa_opt) if options.train.iqa_opt else None,
            negative_loss=build_negative_loss(options.train.neg_opt) if options.train.neg_opt else None,
            rank_loss=build_rank_loss(options.train.rank_opt) if options.train.rank_opt else None,
            net_d=self.net_d, optimizer_d=self.optimizer_d, gan_loss=self.gan_loss,
            net_d_iters=options.train.net_d_iters, net_d_init_iters=options.train.net_d_init_iters,
            clip_max_norm=options.train.grad_clip_max_norm if options.train.grad_clip else None)

        self.pair_pool = None  # per rank: saved by every rank itself, tensors only
        if options.datasets.train.queue_size:
            self.pair_pool = TrainingPairPool(options.datasets.train.queue_size)
        self.ema = None
        if options.train.ema_decay > 0:
            self.ema = AveragedModel(self.accelerator.unwrap_model(self.net_g),
                                     multi_avg_fn=get_ema_multi_avg_fn(options.train.ema_decay), use_buffers=True)
        # After the EMA copy, which stays eager: validation sees other image sizes than training.
        for network in (self.net_g, self.net_d):
            if network is not None:
                speed.compile_in_place(self.accelerator.unwrap_model(network), options.train)
        log.info("process %d of %d on %s, mixed precision %s", self.accelerator.process_index,
                 self.accelerator.num_processes, self.device, self.precision, extra={"all_ranks": True})

    def _setup_run_lock(self) -> None:
        """Sets run_lock: a second training under this name (reading the folder before was harmless) stops here,
        before this one reads the saved state another could be writing."""
        self.run_lock = built_on_main(self.accelerator, lambda: writer_lock.acquire(
            writer_lock.run_lock_file(self.folders.root), str(self.folders.root),
            "training", "path.experiments_root"))

    def _setup_resumed_state(self, resume_from: Path | None) -> None:
        """Sets saved_parts; per-rank seeds, then (resuming) the saved state and this rank's pair pool."""
        self.saved_parts = training_state.SavedParts(
            self.accelerator, self.folders, self.options, self.net_g, self.ema, self.net_d, self.pair_pool,
            self.adapter_settings, self.pretrained_g)
        # The networks start identical on every rank (seeded above); from here each rank draws its own resizes,
        # noise, JPEG qualities, pool permutations and dropout masks, as BasicSR seeds seed + rank.
        set_seed(self.options.manual_seed, device_specific=True)
        if resume_from is None:
            return
        self.progress.iteration = training_state.load_state(self.saved_parts, resume_from)
        for scheduler in (self.scheduler, self.scheduler_d):
            if isinstance(scheduler, LinearWarmup):
                scheduler.start_at(self.progress.iteration)
        log.info("resumed from %s at iteration %d", resume_from, self.progress.iteration)

    def _setup_loader(self) -> None:
        """Sets loader: the training sample order of this rank, from the resumed iteration on."""
        self.loader = training_data.training_loader(self.train_set, self.options, self.accelerator,
                                                    self.progress.iteration)

    def _setup_statistics(self) -> None:
        """Sets sampling_statistics, validation and, in stage 2 with validation, its stage-1 yardstick."""
        self.sampling_statistics = SamplingStatistics(
            ["original"] + [f"{i:02d}" for i in range(1, self.train_set.max_gts)], self.device,
            q_name(self.options.sampler))
        self.validation = None
        if self.validation_sets:
            stage1_reference = None
            if self.pretrained_g is not None and self.iqa_objective is not None and self.val_set is not None:
                stage1_reference = Stage1Reference(self._stage1_upscaler, self.val_set, self.metric_set,
                                                   self.device, self.accelerator)
            self.validation = Validation(self.accelerator, self.validation_sets, self.metric_set, self.options,
                                         self.folders, stage1_reference)

    def _create_run_folder(self) -> None:
        if self.accelerator.is_main_process:
            self.folders.create()
            for leftover in checkpoints.remove_leftovers(self.folders.models, self.folders.training_states):
                log.info("removed %s, left by a save or prune that was killed", leftover)
            resolved = options_to_yaml(self.options)
            write_text_atomically(self.folders.options_file, resolved)
            self.log_file = RunLogFile(self.folders.logs / "train.log")
            self.log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            replay_startup_log(logging.getLogger("sr_iqa"), self.log_file)  # the options and data summary too
            logging.getLogger("sr_iqa").addHandler(self.log_file)
            log.info("options (resolved, as in %s):\n%s", self.folders.options_file, resolved)
            if self.wandb_run_id is not None:
                write_text_atomically(self.folders.logs / trackers.WANDB_RUN_ID_FILE, self.wandb_run_id + "\n")
            if self.q_scales:  # what each metric of Q is divided by, for the record and for a resume
                write_scales(self.folders.root / SCALES_FILE, self.q_scales)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:  # the resolved options as hyper-parameters of every tracker
            self.accelerator.init_trackers(self.options.name)
            trackers.store_hyperparameters(self.accelerator, trackers.hyperparameters(self.options))

    def _validation_metrics(self) -> list[str]:
        """val.metrics, then the held-out monitors and stage 2's optimised metrics, each once."""
        extra = list(self.options.val.monitor_metrics)
        if self.options.train.iqa_opt is not None:
            extra += weighted_metrics(self.options.train.iqa_opt)
        return list(dict.fromkeys([*self.options.val.metrics, *extra]))

    # ----- the loop ----------------------------------------------------------------------------

    def synthesize(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Move the batch to the device and add ``lq``, degraded from the original GT (through the pair pool).
        Always in fp32: JPEG, noise and clamping of the degradations are not safe in bf16."""
        on_device = {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}
        kernels = {name: on_device.pop(name) for name in ("kernel1", "kernel2", "sinc_kernel") if name in on_device}
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            on_device["lq"] = self.degradation.apply(on_device["original"], kernels, self.options.scale)
        if self.online_amo is not None:  # chosen on the unflipped crops, as cached AMO chooses; then flipped
            on_device = self.online_amo.choose(on_device)
        if self.pair_pool is not None:
            on_device = self.pair_pool.exchange(on_device)
        if self.options.train.channels_last:  # images in NHWC, like the networks' weights
            on_device = {name: value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value
                         for name, value in on_device.items()}
        return on_device

    def train_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        """One micro-batch: synthesise LR on the device, then the networks' steps (train/step.py)."""
        data = self.synthesize(batch)
        self.sampling_statistics.update(data)
        return self.step(data, self.progress.iteration + 1)

    def train(self) -> ExperimentFolders:
        """Run until ``train.total_iter``; Ctrl-C saves a checkpoint first. Returns the run folders."""
        bar = progress_bar(total=self.options.train.total_iter, initial=self.progress.iteration,
                           desc=self.options.name, unit="it", disable=not self.accelerator.is_main_process)
        try:
            with StopOnInterrupt(self.accelerator), logging_redirect_tqdm(loggers=[logging.getLogger("sr_iqa")]):
                self._run_iterations(bar)
            bar.close()
            self.validate()
            if self.accelerator.is_main_process:
                log.info("finished at iteration %d: weights in %s; evaluate with `sr-iqa eval --checkpoint %s "
                         "--dataset ROOT --out DIR`", self.progress.iteration, self.folders.models, self.folders.root)
        finally:
            bar.close()
            self.accelerator.end_training()
            if self.accelerator.is_main_process:
                writer_lock.release(self.run_lock)
            if self.log_file is not None:
                logging.getLogger("sr_iqa").removeHandler(self.log_file)
                self.log_file.close()
        return self.folders

    def _run_iterations(self, bar: tqdm) -> None:
        options = self.options
        total = options.train.total_iter
        batches = self.training_batches()
        means = IntervalMeans()
        started = time.perf_counter()
        while self.progress.iteration < total:
            for output in self.run_iteration(batches):
                means.add(output)
            iteration = self.progress.iteration
            bar.update(1)
            if iteration % options.logger.print_freq == 0 or iteration == total:
                self._log_training(means, bar, started)
            if options.val.val_freq and iteration % options.val.val_freq == 0 and iteration != total:
                self.validate()
            saved = iteration % options.logger.save_checkpoint_freq == 0 or iteration == total
            if saved:
                self.save()
            if stop_requested(self.accelerator, iteration, options.logger.print_freq):
                if not saved:
                    self.save()
                log.warning("interrupted at iteration %d; checkpoint saved, resume with path.resume_state=auto",
                            iteration)
                raise KeyboardInterrupt

    def training_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """The loader's batches, copied to the GPU one step ahead with ``datasets.train.prefetch_to_device``."""
        batches = iter(self.loader)
        if self.options.datasets.train.prefetch_to_device:
            return DevicePrefetcher(batches, self.device)
        return batches

    def run_iteration(self, batches: Iterator[dict[str, torch.Tensor]]) -> list[StepOutput]:
        """One optimizer step: its micro-batches (their outputs returned), the schedulers, the EMA and the counter.
        Everything the loop does per iteration except logging, validation and checkpoints."""
        self.lr_used = self.optimizer.param_groups[0]["lr"]  # set for this iteration; the schedulers set the next
        outputs = [self.train_step(next(batches)) for _ in range(self.options.train.gradient_accumulation_steps)]
        with warnings.catch_warnings():  # while D warms up alone, G's scheduler steps (BasicSR's) and G's optimizer not
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)`", UserWarning)
            self.scheduler.step()
        if self.scheduler_d is not None:
            self.scheduler_d.step()
        if self.ema is not None:
            self.ema.update_parameters(self.accelerator.unwrap_model(self.net_g))
        self.progress.iteration += 1
        return outputs

    def _log_training(self, means: IntervalMeans, bar: tqdm, started: float) -> None:
        losses, monitors = means.reduce(self.accelerator)
        diverged = training_log.non_finite_losses(losses)
        if diverged:
            raise training_state.diverged_error(self.folders, self.progress.iteration, f"loss {diverged}")
        sampling, scalars = self.sampling_statistics.report(self.accelerator)
        if self.iqa_objective is not None:
            scalars["train/q_unscored"] = training_log.unscored_q_crops(
                self.accelerator, self.iqa_objective, q_name(self.options.train.iqa_opt))
        training_log.report(self.accelerator, self.progress.iteration, self.options.train.total_iter,
                            self.lr_used, losses, monitors, scalars, sampling, bar, started)

    # ----- validate and save -------------------------------------------------------------------

    def eval_network(self) -> torch.nn.Module:
        """The network that is evaluated and exported: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.accelerator.unwrap_model(self.net_g)

    def _stage1_upscaler(self) -> Upscaler:
        """A fresh copy of the pretrained generator, without adapters: what stage 2 started from."""
        with torch.random.fork_rng(devices=[]):  # its random init must not shift the training's CPU RNG
            network = build_generator(self.options.network_g, self.options.scale).to(self.device).eval()
        load_network_weights(network, self.pretrained_g, self.options.path.strict_load_g,
                             self.options.path.param_key_g)
        return self.validation.upscaler(network)

    def validate(self) -> dict[str, dict[str, float]] | None:
        """Every validation set on the eval network, each process its share (train/validation.py); the results
        by set name, the same on every process. In stage 2 also the changes against stage 1 on the main set."""
        if self.validation is None:
            return None
        return self.validation(self.eval_network(), self.progress.iteration)

    def save(self) -> None:
        """Weights and the full training state for the current iteration (train/training_state.py)."""
        training_state.save_state(self.saved_parts, self.progress.iteration)
