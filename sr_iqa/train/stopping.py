"""Stopping a run cleanly: Ctrl-C asks for a save and a stop that every process agrees on."""

from __future__ import annotations

import signal
from types import FrameType

from accelerate import Accelerator


class StopOnInterrupt:
    """The first Ctrl-C sets Accelerate's trigger (``check_trigger`` then agrees across ranks): save and stop at
    the end of this iteration. A second one kills."""

    def __init__(self, accelerator: Accelerator) -> None:
        self.accelerator = accelerator
        self._previous = None

    def __enter__(self) -> StopOnInterrupt:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.accelerator.set_trigger()
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_requested(accelerator: Accelerator, iteration: int, print_freq: int) -> bool:
    """Every rank must agree to stop at the same iteration, or the final save would deadlock: Accelerate's
    ``check_trigger`` is that agreement, an all-reduce and a host sync, so several processes agree only at the
    logging iterations (which sync anyway): a Ctrl-C stops within ``logger.print_freq`` iterations. One process
    checks only once its trigger is set, so it never syncs for nothing."""
    if accelerator.num_processes == 1:
        return accelerator.flag_tensor is not None and accelerator.check_trigger()
    if iteration % print_freq:
        return False
    return accelerator.check_trigger()
