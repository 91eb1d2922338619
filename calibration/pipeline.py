"""ShapesPipeline: prompts -> 32x32 images with the embedded model (Euler steps on the flow ODE, CFG, batched)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from accel.calibration import grammar as g
from accel.calibration.model import DEFAULT_DIR, ShapesModelConfig, load_models

IMAGE_SHAPE = (3, 32, 32)
_ADDED_COND = {"resolution": None, "aspect_ratio": None}


def image_noise(seed: int, index: int) -> torch.Tensor:
    """The starting noise of image `index` of a call with `seed`: it depends on nothing else, so batching and
    the number of prompts never change an image."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))
    return torch.randn(IMAGE_SHAPE, generator=gen)


class ShapesPipeline:
    """The embedded text-to-image model. Velocity prediction with x_t = (1 - sigma) x0 + sigma eps, v = eps - x0,
    pixels in [-1, 1]; timesteps passed to the transformer are sigma * 1000.

    Attributes: transformer (diffusers PixArtTransformer2DModel), text_encoder (ShapesTextEncoder),
    scheduler (FlowMatchEulerDiscreteScheduler), config (ShapesModelConfig).
    """

    def __init__(self, transformer, text_encoder, scheduler, config: ShapesModelConfig | None = None):
        self.transformer = transformer.eval()
        self.text_encoder = text_encoder.eval()
        self.scheduler = scheduler
        self.config = config or ShapesModelConfig()

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformer.parameters()).dtype

    def to(self, device=None, dtype=None) -> "ShapesPipeline":
        if dtype is not None and dtype != self.dtype:
            self.transformer.to(dtype=dtype)
        self.transformer.to(device=device)
        self.text_encoder.to(device=device)  # the prompt encoder stays float32: it runs once per call
        return self

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings in the transformer's dtype; raises PromptError before any model runs."""
        for p in prompts:  # every prompt is checked before any model runs; '' is no prompt here
            g.check_prompt(p)
        with torch.no_grad():
            return self.text_encoder.encode(prompts).to(self.dtype)

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[str] | str,
        num_inference_steps: int = 20,
        guidance_scale: float | None = None,
        seed: int | None = 0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        batch_size: int | None = None,
        output_type: str = "pt",
    ):
        """Images for prompts: "pt" -> float tensor (N, 3, 32, 32) in [0, 1] on the pipeline's device;
        "np" -> float array (N, 32, 32, 3); "pil" -> list of PIL images.

        Noise: from `generator` (one, or one per prompt) if given, else image_noise(seed, i) for prompt i.
        guidance_scale <= 1 runs the conditional branch only; otherwise each step calls the transformer once on
        [unconditional; conditional]. Each batch of `batch_size` prompts (default: all) is one generation, so
        scheduler.set_timesteps runs at the start of each.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if output_type not in ("pt", "np", "pil"):
            raise ValueError(f"output_type must be 'pt', 'np' or 'pil', got {output_type!r}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        cond = self.encode_prompts(prompts) if prompts else None
        n = len(prompts)
        noise = self._noise(n, seed, generator)
        with torch.no_grad():  # the all-padding prompt, as in condition dropout during training
            uncond = self.text_encoder.encode([""]).to(self.dtype) if scale > 1 else None
        bs = batch_size or max(n, 1)
        out = [self._generate(noise[i:i + bs], cond[i:i + bs], uncond, num_inference_steps, scale)
               for i in range(0, n, bs)]
        images = torch.cat(out) if out else torch.zeros(0, *IMAGE_SHAPE, device=self.device)
        if output_type == "pt":
            return images
        arr = images.permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return arr
        from PIL import Image

        return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in arr]

    def _noise(self, n: int, seed: int | None, generator) -> torch.Tensor:
        if isinstance(generator, list):
            if len(generator) != n:
                raise ValueError(f"got {len(generator)} generators for {n} prompts")
            x = torch.stack([torch.randn(IMAGE_SHAPE, generator=gn, device=gn.device) for gn in generator])
        elif generator is not None:
            x = torch.randn((n, *IMAGE_SHAPE), generator=generator, device=generator.device)
        else:
            seed = 0 if seed is None else int(seed)
            x = torch.stack([image_noise(seed, i) for i in range(n)]) if n else torch.zeros(0, *IMAGE_SHAPE)
        return x.to(self.device, torch.float32)

    def _generate(self, x, cond, uncond, steps: int, scale: float) -> torch.Tensor:
        self.scheduler.set_timesteps(steps)
        b = x.shape[0]
        guided = scale > 1
        text = torch.cat([uncond.expand(b, -1, -1), cond]) if guided else cond
        x = x.to(self.dtype)
        for t in self.scheduler.timesteps:
            x_in = torch.cat([x, x]) if guided else x
            t_vec = t.to(self.device, torch.float32).expand(x_in.shape[0])
            v = self.transformer(
                hidden_states=x_in, encoder_hidden_states=text, timestep=t_vec,
                added_cond_kwargs=_ADDED_COND, return_dict=False,
            )[0]
            if guided:
                v_uncond, v_cond = v.chunk(2)
                v = v_uncond + scale * (v_cond - v_uncond)
            x = self.scheduler.step(v, t, x, return_dict=False)[0]
        return ((x.float() + 1) / 2).clamp(0, 1)


def load_pipeline(device="cpu", dtype: torch.dtype = torch.float32, path: str | Path | None = None) -> ShapesPipeline:
    """The embedded model, loaded offline from the installed package (or from `path`, a saved model folder)."""
    cfg, transformer, text_encoder, scheduler = load_models(Path(path) if path else DEFAULT_DIR)
    return ShapesPipeline(transformer, text_encoder, scheduler, cfg).to(device, dtype)
