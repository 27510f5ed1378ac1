"""Experiment trackers a run may also log to (`report_to`): the Trainer's own integrations.

None is the default: a run writes only its folder. A tracker must be installed (a clear error
says which package otherwise) and is only ever contacted when chosen. Where a tracker would
otherwise reach a server or write outside the run, it is pointed at the run folder unless the
user's environment already says where: TensorBoard writes `<run>/tensorboard/`, MLflow a
`<run>/mlruns/` file store, and W&B runs offline into `<run>/wandb/` unless WANDB_MODE or
WANDB_API_KEY is set (then it syncs as the user configured it).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# The packages each tracker needs, any one of them (the Trainer's TensorBoard callback takes
# tensorboardX where torch's own writer's dependency, tensorboard, is missing).
PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}


class TrackerMissing(ValueError):
    """report_to names a tracker whose package is not installed here."""


def check_tracker(name: str) -> None:
    """Raise TrackerMissing when `name`'s package is not importable here ('none' always is)."""
    packages = PACKAGES.get(name, ())
    if packages and not any(importlib.util.find_spec(p) is not None for p in packages):
        raise TrackerMissing(
            f"report_to '{name}' needs the {packages[0]} package, which is not installed here: "
            f"pip install {packages[0]} (or choose 'none')"
        )


def tracker_environment(name: str, run_dir: Path) -> dict[str, str]:
    """The environment defaults that keep a tracker inside the run folder and off the network
    unless configured; the user's own variables win."""
    run_dir = Path(run_dir)
    defaults: dict[str, str] = {}
    if name == "tensorboard":
        defaults["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    elif name == "mlflow":
        defaults["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").resolve().as_uri()
    elif name == "wandb":
        defaults["WANDB_DIR"] = str(run_dir)
        if "WANDB_API_KEY" not in os.environ and "WANDB_MODE" not in os.environ:
            defaults["WANDB_MODE"] = "offline"
    return {k: v for k, v in defaults.items() if k not in os.environ}


def report_to(name: str, run_dir: Path) -> list[str]:
    """TrainingArguments' `report_to` for a run (after checking the tracker and setting its
    environment defaults in this process): [] for 'none'."""
    if name == "none":
        return []
    check_tracker(name)
    os.environ.update(tracker_environment(name, run_dir))
    return [name]
