"""Work done once, on the main process, and shared: what every rank would otherwise repeat on a shared file
system (indexing and validating the data set, loading the score grids) before its first step."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

T = TypeVar("T")


def built_on_main(accelerator: Accelerator, build: Callable[[], T]) -> T:
    """``build()`` on the main process only; its result, or the error it raised, reaches every process (an error
    raised on the main process alone would leave the others waiting)."""
    if accelerator.num_processes == 1:
        return build()
    payload: list = [None]
    if accelerator.is_main_process:
        try:
            payload = [(True, build())]
        except Exception as error:  # noqa: BLE001 - re-raised on every process below
            payload = [(False, error)]
    broadcast_object_list(payload, from_process=0)
    built, value = payload[0]
    if not built:
        raise value
    return value
