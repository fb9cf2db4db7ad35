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

from sr_iqa.config.call_options import BUILD_ERRORS, build_from_block
from sr_iqa.errors import OptionsError


@functools.lru_cache(maxsize=64)
def _outcome(block_json: str, types_id: int, side: int) -> tuple[str | None, str | None, tuple[int, ...] | None]:
    """(what the constructor refused, what the forward refused, the output's shape)."""
    block, choices = json.loads(block_json), _TYPES[types_id]
    try:
        with init_empty_weights():  # parameters on the meta device; the constructor's own arithmetic on the CPU
            net = build_from_block(block, choices)
    except BUILD_ERRORS as error:
        return _first_line(error), None, None
    with torch.device("meta"):
        net.to("meta")
        try:
            out = net(torch.zeros(1, int(block.get("num_in_ch", 3)), side, side))
        except NotImplementedError:  # an operator without a meta kernel: the forward cannot be tried here
            return None, None, None
        except BUILD_ERRORS as error:
            return None, _first_line(error), None
    return None, None, tuple(out.shape) if isinstance(out, torch.Tensor) else None


_TYPES: dict[int, Mapping[str, Callable[..., Any]]] = {}


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_on_meta(block: Mapping[str, Any], choices: Mapping[str, Callable[..., Any]], side: int, key: str,
                source: str, input_name: str = "") -> tuple[int, ...] | None:
    """Build ``block`` and run it on a ``side`` x ``side`` input on the meta device; the output's shape (None when
    an operator has no meta kernel). A refusal is an ``OptionsError`` naming ``key`` (and ``input_name``)."""
    _TYPES[id(choices)] = choices
    built, ran, shape = _outcome(json.dumps(dict(block), sort_keys=True, default=str), id(choices), side)
    if built is not None:
        raise OptionsError(f"{source}: '{key}' cannot be built: {built}")
    if ran is not None:
        raise OptionsError(f"{source}: '{key}' cannot run{input_name}: {ran}")
    return shape
