"""Results plots name their methods in a legend below the panels instead of text beside each point (which
overlapped wherever methods scored alike): no label on the axes, and the legend clear of every panel."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
from matplotlib import pyplot  # noqa: E402

from sr_iqa.ablation.aggregate import perception_distortion_plot  # noqa: E402
from sr_iqa.evaluate.multi_gt import GOLD_STANDARD  # noqa: E402


def test_methods_scoring_alike_are_named_once_in_a_legend_clear_of_the_panels(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    labels = [f"RRDB sampler {i} with a long name+FT" for i in range(8)]
    rows = {label: {"niqe": 5.0 + 0.001 * i, "psnr": 24.0 + 0.001 * i} for i, label in enumerate(labels)}
    rows[GOLD_STANDARD] = {"niqe": 4.0}
    monkeypatch.setattr(pyplot, "close", lambda figure: None)  # keep the figure to look at it
    perception_distortion_plot(rows, ["niqe"], ["psnr"], {"niqe": True, "psnr": False}, tmp_path / "p.png")
    figure = pyplot.gcf()
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == labels
    renderer = figure.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for axes in figure.axes:
        assert {text.get_text() for text in axes.texts} <= {GOLD_STANDARD}  # no method text on the panel
        assert not box.overlaps(axes.get_tightbbox(renderer))
    markers = {(tuple(collection.get_facecolor()[0]), collection.get_paths()[0].vertices.tobytes())
               for collection in figure.axes[0].collections}
    assert len(markers) == len(labels)  # each method its own marker and colour
    pyplot.close("all")
