"""A tiny random-weight shapes pipeline: the search mechanics do not need a trained model."""

import torch

from accel.calibration.model import ShapesModelConfig, build_models, build_scheduler
from accel.calibration.pipeline import ShapesPipeline


def tiny_pipeline(layers: int = 2, seed: int = 0) -> ShapesPipeline:
    torch.manual_seed(seed)
    cfg = ShapesModelConfig(patch_size=4, num_layers=layers, num_heads=2, head_dim=8, text_dim=16, text_layers=1,
                            text_heads=2)
    transformer, text_encoder = build_models(cfg)
    return ShapesPipeline(transformer, text_encoder, build_scheduler(), cfg)


PROMPTS = ["a small red circle at the top left on a white background",
           "a large blue square at the bottom right on a black background",
           "a small green triangle at the center on a gray background"]
