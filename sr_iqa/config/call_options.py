"""Check and build ``{type: Name, **kwargs}`` option blocks against the target's signature.

BasicSR passes such blocks straight to a constructor, so a misspelt kwarg surfaces hours
later (or never: SwinIR swallows unknown kwargs). Here the keys and value types are checked
against ``inspect.signature`` before any work starts; building then uses the same table.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sr_iqa.config.suggest import did_you_mean
from sr_iqa.errors import OptionsError, first_line

_VALUE_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", tuple: "list", list: "list"}


def _value_fits(value: Any, default: Any) -> bool:
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return True


def _dataclass_factory_defaults(target: Callable[..., Any]) -> dict[str, Any]:
    """A dataclass's ``default_factory`` values, which its signature does not show."""
    if not dataclasses.is_dataclass(target):
        return {}
    return {f.name: f.default_factory() for f in dataclasses.fields(target)
            if f.default_factory is not dataclasses.MISSING}


def check_call_block(
    block: Mapping[str, Any],
    choices: Mapping[str, Callable[..., Any]],
    key: str,
    source: str,
    supplied: tuple[str, ...] = (),
) -> None:
    """Raise OptionsError naming ``source`` and the dotted key of the first problem found.

    ``supplied`` lists parameters that sr_iqa passes itself (``params`` of an optimizer).
    """
    if "type" not in block:
        raise OptionsError(f"{source}: '{key}.type' is missing; choose one of: {', '.join(sorted(choices))}")
    type_name = block["type"]
    if type_name not in choices:
        raise OptionsError(
            f"{source}: '{key}.type' is '{type_name}', which sr_iqa does not know; "
            + did_you_mean(str(type_name), choices).replace("valid keys", "valid types")
        )
    target = choices[type_name]
    parameters = inspect.signature(target).parameters
    named = {
        name: p for name, p in parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in supplied
    }
    factory_defaults = _dataclass_factory_defaults(target)
    for name, value in block.items():
        if name == "type":
            continue
        if name not in named:
            raise OptionsError(
                f"{source}: unknown key '{key}.{name}' for {type_name}; {did_you_mean(name, named)}"
            )
        default = factory_defaults.get(name, named[name].default)
        if not _value_fits(value, default):
            expected = _VALUE_TYPE_NAMES.get(type(default), type(default).__name__)
            raise OptionsError(
                f"{source}: '{key}.{name}' expects {expected}, got {value!r} ({type(value).__name__})"
            )
    for name, parameter in named.items():
        if parameter.default is inspect.Parameter.empty and name not in block:
            raise OptionsError(f"{source}: '{key}.{name}' is required by {type_name}")


# What a constructor (or a first step) raises for a value it refuses: torch's "Invalid learning rate", basicsr's
# "Unsupported reduction mode", a convolution of zero channels, a scheduler's division by T_max 0.
BUILD_ERRORS = (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, RuntimeError, AssertionError,
                NotImplementedError)


def trial_build(key: str, source: str, build: Callable[[], Any]) -> Any:
    """Run ``build`` (make, and maybe run once, what the block at ``key`` names) at load time: a value that the
    target refuses fails here, in one line naming the key, not as a traceback once the run folder exists."""
    try:
        return build()
    except BUILD_ERRORS as error:
        raise OptionsError(f"{source}: '{key}' cannot be built: {first_line(error)}") from None


MAX_NETWORK_SIZE = 1024  # per size (and per list of sizes, summed); full RRDB: 64 features, 23 blocks


def check_sizes(block: Mapping[str, Any], key: str, source: str) -> None:
    """Network sizes (``num_feat``, ``num_block``, ``depths``, ``num_heads``, ...) from 1 to ``MAX_NETWORK_SIZE``:
    basicsr builds an RRDBNet of ``num_block: -1`` without a word (no blocks at all), and one of 10^7 blocks (a
    weight file's metadata may ask for it) builds for hours."""
    for name, value in block.items():
        if not (name.startswith("num_") or name in ("depths", "embed_dim", "window_size")):
            continue
        values = [v for v in (value if isinstance(value, (list, tuple)) else [value])
                  if isinstance(v, int) and not isinstance(v, bool)]
        if any(v < 1 for v in values):
            raise OptionsError(f"{source}: '{key}.{name}' must be at least 1, got {value!r}")
        if sum(values) > MAX_NETWORK_SIZE:
            raise OptionsError(f"{source}: '{key}.{name}' must be at most {MAX_NETWORK_SIZE} (summed over a list), "
                               f"got {value!r}")


def build_from_block(block: Mapping[str, Any], choices: Mapping[str, Callable[..., Any]], *args: Any) -> Any:
    """Call ``choices[block['type']](*args, **kwargs)``; the block was checked at load time."""
    kwargs = {name: value for name, value in block.items() if name != "type"}
    return choices[block["type"]](*args, **kwargs)
