"""Commands that train: `train`, `demo`, `ablate`, `experiment` and the ablation's `report`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("sr_iqa.cli")


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a generator from a BasicSR-style option file")
    train.add_argument("-opt", "--opt", required=True, type=Path, help="YAML option file")
    train.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides")
    train.add_argument("--auto_resume", "--auto-resume", action="store_true",
                       help="BasicSR's flag: continue from the newest training state (path.resume_state=auto)")
    train.add_argument("--launcher", help="BasicSR's; ignored (processes come from `accelerate launch`)")
    train.set_defaults(handler=_train)

    demo = commands.add_parser("demo", help="install Real-ESRGAN and VGG19, build the demo set, train an RRDB cut "
                                            "from Real-ESRGAN (stage 1), fine-tune it against NIQE with LoRA and "
                                            "fully (stage 2), print the held-out table")
    demo.add_argument("--dataset-root", type=Path, default=Path("datasets/demo"))
    demo.add_argument("-opt", "--opt", type=Path, default=Path("options/demo/train_rrdb_demo.yml"),
                      help="stage-1 option file")
    demo.add_argument("--finetune-opt", type=Path, default=Path("options/demo/finetune_rrdb_demo.yml"),
                      help="stage-2 option file")
    demo.add_argument("--no-finetune", action="store_true", help="stage 1 only")
    demo.add_argument("--fresh", action="store_true", help="delete earlier demo runs and train again")
    demo.add_argument("overrides", nargs="*", metavar="key.sub=value", help="option overrides for both stages")
    demo.set_defaults(handler=_demo)

    ablate = commands.add_parser("ablate", help="run the sampling ablation grid (resumable), table, plot, report")
    ablate.add_argument("-opt", "--opt", type=Path, required=True, help="ablation file (options/ablation/)")
    ablate.add_argument("--dry-run", action="store_true", help="print the accelerate launch commands only")
    ablate.set_defaults(handler=_ablate)

    experiment = commands.add_parser(
        "experiment", help="the paper's orderings on photos scikit-image ships: samplers, stage-2 variants, Gold "
                           "Standard, over seeds with 95%% intervals; writes experiments/RESULTS.md (resumable)")
    which = experiment.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", help="options/experiment/PRESET.yml: cpu (about an hour on 2 cores), choice (Q's "
                                         "choice among the GTs, judged by BRISQUE; hours on 2 cores), gpu, tiny")
    which.add_argument("-opt", "--opt", type=Path, help="an experiment file of your own")
    experiment.add_argument("--dry-run", action="store_true", help="print the planned commands only")
    experiment.set_defaults(handler=_experiment)

    report = commands.add_parser("report", help="write the HTML report of a finished ablation")
    report.add_argument("--ablation", type=Path, required=True, help="the ablation's folder (experiments/NAME)")
    report.set_defaults(handler=_report)


def _train(args: argparse.Namespace) -> int:
    from sr_iqa.checked_options import load_options

    if args.launcher not in (None, "none"):
        log.warning("--launcher %s is BasicSR's; sr_iqa's processes come from `accelerate launch` (ignored)",
                    args.launcher)
    overrides = [*args.overrides, *(["path.resume_state=auto"] if args.auto_resume else [])]
    options = load_options(args.opt, overrides, check_paths=True)
    from sr_iqa.train.trainer import Trainer

    Trainer(options, source=str(args.opt)).train()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sr_iqa.demo import run_demo

    run_demo(dataset_root=args.dataset_root, options_file=args.opt, overrides=args.overrides, fresh=args.fresh,
             finetune_file=None if args.no_finetune else args.finetune_opt)
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from sr_iqa.ablation.runner import run_ablation
    from sr_iqa.cli import main

    return run_ablation(args.opt, args.dry_run, entry=main)


def _experiment(args: argparse.Namespace) -> int:
    from sr_iqa.ablation.experiment import run_experiment
    from sr_iqa.ablation.experiment_options import preset_file
    from sr_iqa.cli import main

    results = run_experiment(args.opt or preset_file(args.preset), args.dry_run, entry=main)
    if results is not None:
        print(f"wrote {results}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from sr_iqa.report.html import write_report

    print(f"wrote {write_report(args.ablation)}")
    return 0
