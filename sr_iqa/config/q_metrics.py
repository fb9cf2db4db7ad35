"""Which metrics make Q, for the samplers and for stage 2's objective: one metric (``metric``, its raw score) or
several (``metrics``: name -> weight, each normalised by its spread over the training GTs; iqa/combined_q.py)."""

from __future__ import annotations

from sr_iqa.config.schema import IqaObjectiveOptions, Options, SamplerOptions

MAX_METRIC_WEIGHT = 1e6  # weights are relative (each metric normalised): a larger ratio leaves the others out


def weighted_metrics(block: SamplerOptions | IqaObjectiveOptions) -> dict[str, float]:
    """The metrics of Q with their weights: ``{metric: 1}`` for one metric (not normalised), else ``metrics``."""
    return {block.metric: 1.0} if block.metric is not None else dict(block.metrics)


def q_name(block: SamplerOptions | IqaObjectiveOptions) -> str:
    """Q's name in logs and monitors: the metric, or ``combined`` for several."""
    return block.metric if block.metric is not None else "combined"


def objective_cache(options: Options) -> str | None:
    """The score cache stage 2's normalisation reads: train.iqa_opt.cache, else the sampler's."""
    iqa_opt = options.train.iqa_opt
    return (iqa_opt.cache if iqa_opt is not None else None) or options.sampler.cache


def q_metric_problems(options: Options, source: str) -> list[str]:
    """One of ``metric`` and ``metrics`` where Q is needed, positive weights, and the cache the statistics come
    from."""
    problems: list[str] = []
    sampler, iqa_opt = options.sampler, options.train.iqa_opt
    blocks: list[tuple[str, SamplerOptions | IqaObjectiveOptions, bool]] = [
        ("sampler", sampler, sampler.type.value in ("sma", "smp", "amo"))]
    if iqa_opt is not None:
        blocks.append(("train.iqa_opt", iqa_opt, True))
    for key, block, needs_q in blocks:
        if block.metric is not None and block.metrics:
            problems.append(f"{source}: '{key}.metric' and '{key}.metrics' are both set; give one metric, or "
                            "several with their weights under metrics")
        elif needs_q and block.metric is None and not block.metrics:
            what = f"the {sampler.type.value} sampler" if key == "sampler" else "train.iqa_opt"
            problems.append(f"{source}: {what} needs '{key}.metric' (one metric) or '{key}.metrics' "
                            "({name: weight}, several)")
        problems += [f"{source}: '{key}.metrics.{name}' must be a positive weight of at most {MAX_METRIC_WEIGHT:g} "
                     f"(leave a metric out to drop it), got {weight}" for name, weight in block.metrics.items()
                     if not 0 < weight <= MAX_METRIC_WEIGHT]
    if sampler.metrics and sampler.cache is None:
        problems.append(f"{source}: 'sampler.metrics' normalises each metric by its scores of the training GTs: "
                        "it needs 'sampler.cache' (written by `sr-iqa score`)")
    if iqa_opt is not None and iqa_opt.metrics and objective_cache(options) is None:
        problems.append(f"{source}: 'train.iqa_opt.metrics' normalises each metric by its scores of the training "
                        "GTs: set 'train.iqa_opt.cache' (or 'sampler.cache') to the score cache `sr-iqa score` "
                        "wrote")
    return problems


def choice_problems(sampler: SamplerOptions, online: bool, source: str) -> list[str]:
    """sampler.choose / shuffle_seed / include_original where the sampler has no such choice to make."""
    kind = sampler.type.value
    problems = []
    if sampler.choose.value == "worst" and kind not in ("sma", "smp", "amo"):
        problems.append(f"{source}: 'sampler.choose: worst' needs a Q-driven sampler (sma, smp or amo), not {kind}")
    if sampler.shuffle_seed is not None and (kind not in ("sma", "smp", "amo") or online):
        problems.append(f"{source}: 'sampler.shuffle_seed' permutes cached scores: it needs sma, smp or cached amo, "
                        f"not {kind}" + (" online" if online else ""))
    if not sampler.include_original and kind not in ("rand", "sma", "amo"):
        problems.append(f"{source}: 'sampler.include_original: false' applies to rand, sma and amo (upos and smp "
                        f"never choose the original but as a fallback), not {kind}")
    return problems
