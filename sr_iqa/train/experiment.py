"""The BasicSR-style run folder: ``experiments/<name>/{models,training_states,logs,visualization}``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExperimentFolders:
    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def training_states(self) -> Path:
        return self.root / "training_states"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def visualization(self) -> Path:
        return self.root / "visualization"

    @property
    def validation_log(self) -> Path:
        """One JSON line per validation: ``{"iteration": N, "results": {metric: value, ...}}``, in stage 2 also
        ``"stage1": {...}`` (the stage-1 model's scores); with several validation sets ``"sets": {name: results}``
        (``results`` is datasets.val's). After a resume the last line of an iteration wins."""
        return self.logs / "validation.jsonl"

    @property
    def options_file(self) -> Path:
        return self.root / "options.yml"

    def create(self) -> None:
        for folder in (self.models, self.training_states, self.logs, self.visualization):
            folder.mkdir(parents=True, exist_ok=True)
