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


def tiny_flux_sampler(steps: int = 5):
    """A random FLUX transformer stepped by the generic flow-Euler sampler (no text encoder needed)."""
    from diffusers import FluxTransformer2DModel

    from accel.search.samplers import FlowEulerSampler

    torch.manual_seed(0)
    model = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=2,
                                   attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                   pooled_projection_dim=8, axes_dims_rope=(2, 2, 4)).eval()
    g = torch.Generator().manual_seed(1)
    noise, text, pooled = torch.randn(2, 64, 4, generator=g), torch.randn(2, 5, 16, generator=g), torch.randn(2, 8, generator=g)
    img_ids, txt_ids = torch.zeros(64, 3), torch.zeros(5, 3)
    img_ids[:, 1], img_ids[:, 2] = torch.arange(64) // 8, torch.arange(64) % 8
    sigmas = torch.linspace(1.0, 0.0, steps + 1)

    def kwargs(x, i):
        return {"hidden_states": x, "encoder_hidden_states": text, "pooled_projections": pooled,
                "timestep": sigmas[i].expand(x.shape[0]), "img_ids": img_ids, "txt_ids": txt_ids, "return_dict": False}

    def to_images(x):  # (N, 64 tokens, 4) -> (N, 4, 8, 8) in [0, 1]
        return ((x.reshape(-1, 8, 8, 4).permute(0, 3, 1, 2).float().clamp(-3, 3) + 3) / 6)

    return FlowEulerSampler(model, lambda x, i: model(**kwargs(x, i))[0], noise, sigmas, to_images,
                            lambda: kwargs(noise, 0))
