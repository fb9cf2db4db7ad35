"""A network block tried once on the meta device: built (parameters without memory) and run on one input, so
that a value its constructor or its forward refuses is one line at load time, not a traceback at the first step.

The outcome is cached per block: a full-size RRDB costs about half a second to build and run on the meta device
(Python dispatch of some 350 operators), and a process loading one option file several times pays it once."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import torch
from accelerate import init_empty_weights

from sr_iqa.config.call_options import BUILD_ERRORS
from sr_iqa.errors import OptionsError, first_line

MAX_PARAMETERS = 10**9  # 4 GB of float32 weights before any optimizer state


@functools.lru_cache(maxsize=64)
def _outcome(target: Callable[..., torch.nn.Module], kwargs_json: str,
             side: int) -> tuple[str | None, str | None, tuple[int, ...] | None]:
    """(what the constructor refused, what the forward refused, the output's shape)."""
    kwargs = json.loads(kwargs_json)
    try:
        with init_empty_weights():  # parameters on the meta device; the constructor's own arithmetic on the CPU
            net = target(**kwargs)
    except BUILD_ERRORS as error:
        return first_line(error), None, None
    parameters = sum(parameter.numel() for parameter in net.parameters())
    if parameters > MAX_PARAMETERS:
        return (f"{parameters:,} parameters, more than the {MAX_PARAMETERS:,} sr_iqa builds (full RRDB: 16.7 million)",
                None, None)
    with torch.device("meta"):
        net.to("meta")
        try:
            out = net(torch.zeros(1, int(kwargs.get("num_in_ch", 3)), side, side))
        except NotImplementedError:  # an operator without a meta kernel: the forward cannot be tried here
            return None, None, None
        except BUILD_ERRORS as error:
            return None, first_line(error), None
    return None, None, tuple(out.shape) if isinstance(out, torch.Tensor) else None


def run_on_meta(block: Mapping[str, Any], choices: Mapping[str, Callable[..., Any]], side: int, key: str,
                source: str, input_name: str = "") -> tuple[int, ...] | None:
    """Build ``block`` (checked against ``choices``) and run it on a ``side`` x ``side`` input on the meta device;
    the output's shape (None when an operator has no meta kernel). A refusal is an ``OptionsError`` naming ``key``
    (and ``input_name``)."""
    kwargs = {name: value for name, value in block.items() if name != "type"}
    built, ran, shape = _outcome(choices[block["type"]], json.dumps(kwargs, sort_keys=True, default=str), side)
    if built is not None:
        raise OptionsError(f"{source}: '{key}' cannot be built: {built}")
    if ran is not None:
        raise OptionsError(f"{source}: '{key}' cannot run{input_name}: {ran}")
    return shape
