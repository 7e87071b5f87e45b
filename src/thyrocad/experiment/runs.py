"""Run specifications and the run registry that makes an experiment resumable.

One run is one (model, split) pair. Its result is written atomically (temporary file, then
`os.replace`) as one JSON file under `RESULTS_DIR/runs/<settings-hash>/`. The settings hash
covers everything a result depends on (cohort data hash, preprocessing and training settings,
splits, models), so re-running the same command skips finished runs, and changing a setting
starts a new results set instead of mixing runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thyrocad.errors import ExperimentError
from thyrocad.files import write_text_atomic

logger = logging.getLogger(__name__)

RUNS_DIRNAME = "runs"
SETTINGS_FILENAME = "settings.json"


@dataclass(frozen=True)
class RunSpec:
    """One unit of work: train/evaluate `model` (a backbone or a baseline) on split `split`."""

    model: str
    kind: str  # "model" (a CNN trained by thyrocad.training) or "baseline"
    split: int

    @property
    def run_id(self) -> str:
        return f"{self.model}--split{self.split:03d}"


@dataclass
class RunResult:
    """What one run produced: per-test-patient probabilities (label 1 = residual) and history."""

    model: str
    kind: str
    split: int
    patient_ids: list[str]
    labels: list[int]
    probabilities: list[float]
    history: dict[str, list[float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    # the external test cohort under this run's model: patient_ids, labels, probabilities,
    # unscored (patients without a usable view); empty without a test cohort
    external: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> RunSpec:
        return RunSpec(self.model, self.kind, self.split)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunResult:
        return cls(**json.loads(text))


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the form that settings are hashed in."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short SHA-256 of the canonical JSON of `settings` (16 hex digits)."""
    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()[:16]


class RunRegistry:
    """Finished runs of one settings set, stored under `results_dir/runs/<settings-hash>/`."""

    def __init__(self, results_dir: Path | str, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.hash = settings_hash(self.settings)
        self.root = Path(results_dir) / RUNS_DIRNAME / self.hash
        settings_file = self.root / SETTINGS_FILENAME
        text = json.dumps(self.settings, sort_keys=True, indent=1)
        if settings_file.exists():
            if json.loads(settings_file.read_text()) != json.loads(text):
                raise ExperimentError(
                    f"{settings_file} belongs to other settings although its hash matches; "
                    "delete that folder and run again"
                )
        else:
            write_text_atomic(settings_file, text)

    def path(self, spec: RunSpec) -> Path:
        return self.root / f"{spec.run_id}.json"

    def is_done(self, spec: RunSpec) -> bool:
        return self.path(spec).exists()

    def save(self, result: RunResult) -> None:
        write_text_atomic(self.path(result.spec), result.to_json())
        logger.debug("recorded run %s", result.spec.run_id)

    def load(self, spec: RunSpec) -> RunResult:
        path = self.path(spec)
        try:
            result = RunResult.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise ExperimentError(
                f"cannot read the recorded run {path} ({exc}); delete it and run again"
            ) from exc
        if result.spec != spec:
            raise ExperimentError(f"{path} holds run {result.spec}, not {spec}; delete it")
        return result

    def pending(self, specs: Iterable[RunSpec]) -> list[RunSpec]:
        """The specs not finished yet, in the given order."""
        return [s for s in specs if not self.is_done(s)]
