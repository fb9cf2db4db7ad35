"""Methods told apart by marker and colour, named in one legend below the panels: text beside each point
overlapped wherever methods score alike (most of them, in every results plot)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

MARKERS = "osD^vP*Xph<>"


def method_styles(labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct (marker, colour) per label, in order (12 markers and 10 colours, stepped together)."""
    from matplotlib import colormaps

    colours = colormaps["tab10"].colors
    pairs = zip(itertools.cycle(MARKERS), itertools.cycle(colours))  # endless: 60 pairs before one repeats
    return {label: {"marker": marker, "color": colour}
            for label, (marker, colour) in zip(labels, pairs, strict=False)}


def legend_below(figure: Any, axes: Any) -> Any:
    """One legend of ``axes``' labelled artists, outside and below every panel (the figure must use the
    constrained layout, which keeps it off the axes)."""
    handles, labels = axes.get_legend_handles_labels()
    return figure.legend(handles, labels, loc="outside lower center", ncol=min(3, max(1, len(labels))), fontsize=7,
                         frameon=False)
