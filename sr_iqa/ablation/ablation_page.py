"""An ablation's section of a results page (``results:`` in the ablation file): how it ran, its design, the table
of every row with 95% intervals over seeds (FR against the Positive GTs and against the original) and the
perception-distortion plot, an adapter's strengths drawn as a curve. Written by ``sr-iqa ablate`` after the
aggregation, so that the rows a user reads are the ones the command measured."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from sr_iqa.ablation.page_sections import machine_line, overrides_code, replace_section, step_minutes, versions_line
from sr_iqa.ablation.plan import AblationOptions


def write_ablation_page(options: AblationOptions, source: Path, record: dict, step_seconds: dict[str, float],
                        root: Path) -> Path:
    """Replace the ablation's section of ``options.results`` (created with the page's header when missing);
    the plot is copied to ``results/<name>_perception_distortion.png`` beside the page."""
    page = Path(options.results)
    parts = [f"## Ablation `{options.name}`",
             f"Written by `sr-iqa ablate -opt {source}` on "
             f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
             f"- Machine: {machine_line()}.\n- Versions: {versions_line()}.\n"
             f"- Time: {sum(step_seconds.values()) / 60:.1f} min of steps (stage 1 "
             f"{step_minutes(step_seconds, 'stage1'):.1f}, stage 2 {step_minutes(step_seconds, 'stage2'):.1f}, "
             f"evaluation {step_minutes(step_seconds, 'eval'):.1f}; summed over every invocation).\n"
             f"- Held-out data: `{options.dataset}`; seeds {record['seeds']}; overrides of every run: "
             f"{overrides_code(options.overrides)}; stage 1: {overrides_code(options.stage1_overrides)}; stage 2: "
             f"{overrides_code(options.stage2_overrides)}."]
    if options.design:
        parts += ["### Design (fixed before the runs)", options.design.strip()]
    parts += ["### Results", record["caption"], record["table"]]
    if len(record["seeds"]) > 1:
        parts.append("Mean ± half width of the 95% interval over the seeds (Student's t, n - 1 degrees of freedom); "
                     "rows without one are evaluated once (references). FR metrics against the Positive GTs, then "
                     "against the original GT:")
    else:
        parts.append("One seed, no interval. FR metrics against the Positive GTs, then against the original GT:")
    parts.append(record["interval_table"])
    if record.get("plot"):
        plot = page.parent / "results" / f"{options.name}_perception_distortion.png"
        plot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / record["plot"], plot)
        parts.append(f"![perception-distortion]({plot.relative_to(page.parent).as_posix()})")
    replace_section(page, options.name, "\n\n".join(parts) + "\n")
    return page
