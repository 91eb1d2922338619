"""The embedded default model ("builtin:shapes"): a small text-to-image DiT trained on procedural shapes,
its prompt sets, and its quality metrics. See README.md in this folder."""

from accel.calibration.grid import save_grid
from accel.calibration.pipeline import ShapesPipeline, load_pipeline
from accel.calibration.prompts import load_prompts

__all__ = ["ShapesPipeline", "load_pipeline", "load_prompts", "save_grid"]
