"""Tiny random models of every family the runtime supports, each with a `call(model, step)` that runs one
denoiser call at a decreasing timestep, as a sampler would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

STEPS = 6


@dataclass
class Case:
    name: str
    model: nn.Module
    call: Callable[[nn.Module, int], torch.Tensor]


def _t(step: int, batch: int, scale: float = 1000.0) -> torch.Tensor:
    return torch.full((batch,), scale * (1 - step / STEPS))


def pixart() -> Case:
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(0)
    m = PixArtTransformer2DModel(sample_size=8, num_layers=3, attention_head_dim=8, num_attention_heads=2,
                                 in_channels=4, out_channels=8, cross_attention_dim=16, caption_channels=12,
                                 norm_type="ada_norm_single", patch_size=2, use_additional_conditions=False).eval()
    x, enc = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 12)
    cond = {"resolution": None, "aspect_ratio": None}
    return Case("pixart", m, lambda m, s: m(x, encoder_hidden_states=enc, timestep=_t(s, 2), added_cond_kwargs=cond,
                                             return_dict=False)[0])


def dit() -> Case:
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(0)
    m = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=2,
                              sample_size=8, patch_size=2, num_embeds_ada_norm=10).eval()
    x, labels = torch.randn(2, 4, 8, 8), torch.tensor([1, 3])
    return Case("dit", m, lambda m, s: m(x, timestep=_t(s, 2).long(), class_labels=labels, return_dict=False)[0])


def sd3() -> Case:
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    m = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                              num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                              pooled_projection_dim=8, out_channels=4, pos_embed_max_size=16).eval()
    x, enc, pooled = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 16), torch.randn(2, 8)
    return Case("sd3", m, lambda m, s: m(x, encoder_hidden_states=enc, pooled_projections=pooled,
                                          timestep=_t(s, 2), return_dict=False)[0])


def flux() -> Case:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    m = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=2, attention_head_dim=8,
                               num_attention_heads=2, joint_attention_dim=16, pooled_projection_dim=8,
                               axes_dims_rope=(2, 2, 4)).eval()
    x, enc, pooled = torch.randn(2, 16, 4), torch.randn(2, 5, 16), torch.randn(2, 8)
    img_ids, txt_ids = torch.zeros(16, 3), torch.zeros(5, 3)
    img_ids[:, 1], img_ids[:, 2] = torch.arange(16) // 4, torch.arange(16) % 4
    return Case("flux", m, lambda m, s: m(x, encoder_hidden_states=enc, pooled_projections=pooled,
                                           timestep=_t(s, 2, 1.0), img_ids=img_ids, txt_ids=txt_ids,
                                           return_dict=False)[0])


class GenericBlock(nn.Module):
    """A block built the diffusers way but of no known family: attn + ff with an adaLN-style gate."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.gate = nn.Linear(1, dim)

    def forward(self, x, t):
        g = self.gate(t[:, None, None].expand(-1, 1, 1))
        x = x + g * self.attn(self.norm(x))
        return x + g * self.ff(self.norm(x))


class GenericDenoiser(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(GenericBlock(dim) for _ in range(depth))

    def forward(self, x, timestep):
        for block in self.blocks:
            x = block(x, timestep / 1000)
        return x


def generic() -> Case:
    torch.manual_seed(0)
    m = GenericDenoiser().eval()
    x = torch.randn(2, 7, 16)
    return Case("generic", m, lambda m, s: m(x, timestep=_t(s, 2)))


class PolicyDenoiser(nn.Module):
    """Diffusion-policy style: a torch.nn.TransformerDecoder over action tokens, attending to observations."""

    def __init__(self, dim: int = 16, depth: int = 3, encoder: bool = False) -> None:
        super().__init__()
        self.time = nn.Linear(1, dim)
        self.encoder = encoder
        if encoder:
            layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
            self.stack = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        else:
            layer = nn.TransformerDecoderLayer(dim, 2, 32, dropout=0.0, batch_first=True, norm_first=True)
            self.stack = nn.TransformerDecoder(layer, depth)

    def forward(self, sample, timestep, cond):
        h = sample + self.time(timestep[:, None, None].float() / 100)
        return self.stack(h) if self.encoder else self.stack(h, cond)


def policy(encoder: bool = False) -> Case:
    torch.manual_seed(0)
    m = PolicyDenoiser(encoder=encoder).eval()
    x, cond = torch.randn(2, 8, 16), torch.randn(2, 3, 16)
    return Case("policy-encoder" if encoder else "policy", m, lambda m, s: m(x, _t(s, 2, 100.0), cond))


ALL = {"pixart": pixart, "dit": dit, "sd3": sd3, "flux": flux, "generic": generic, "policy": policy,
       "policy-encoder": lambda: policy(encoder=True)}
