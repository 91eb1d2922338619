"""Wall-time overhead of accel's wrapper, and how much of a plan's FLOP saving turns into time.

A PixArtTransformer2DModel of about 10M parameters at 32x32 (patch 2: 256 tokens), batch 1, 20 denoiser calls per
generation on the CPU. Every figure is the median of paired, alternating runs in this process (accel.search.timing).

    python benchmarks/overhead.py [--pairs 20] [--every-pairs 10] [--threads N]
"""

from __future__ import annotations

import argparse
import numpy as np
import torch
from diffusers import PixArtTransformer2DModel

import accel
from accel.search.timing import paired_ratio

STEPS = 20


def build():
    torch.manual_seed(0)
    model = PixArtTransformer2DModel(sample_size=32, num_layers=10, attention_head_dim=64, num_attention_heads=4,
                                     in_channels=3, out_channels=6, cross_attention_dim=256, caption_channels=64,
                                     norm_type="ada_norm_single", patch_size=2, use_additional_conditions=False).eval()
    x, text = torch.randn(1, 3, 32, 32), torch.randn(1, 12, 64)
    extra = {"resolution": None, "aspect_ratio": None}

    @torch.no_grad()
    def generate(steps=STEPS):
        for t in torch.linspace(999, 50, steps):
            model(x, encoder_hidden_states=text, timestep=t.expand(1), added_cond_kwargs=extra, return_dict=False)

    return model, generate


def timed_with(model, generate, plan, steps=STEPS):
    def run():
        with accel.accelerate(model, plan):
            generate(steps)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="pairs per overhead figure")
    parser.add_argument("--every-pairs", type=int, default=10, help="pairs per every-n wall ratio")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, generate = build()
    layout = accel.layout_of(model)
    params = sum(p.numel() for p in model.parameters())
    print(f"PixArtTransformer2DModel, {params / 1e6:.1f}M parameters, {layout.n_cells} cells, 32x32, batch 1, "
          f"{STEPS} steps, {torch.get_num_threads()} threads")

    full = accel.CacheSchedule.full(layout, STEPS)
    # every cell patched and computing: a plan one step longer whose last step reuses, run for STEPS steps
    mask = np.ones((STEPS + 1, layout.n_cells), dtype=bool)
    mask[-1] = False
    hooked = accel.CacheSchedule(layout, mask)
    rows = [("full plan, text K/V reuse off (clock only)", accel.Plan(cache=full, reuse_text_kv=False)),
            ("full plan, every cell patched, text K/V reuse off", accel.Plan(cache=hooked, reuse_text_kv=False)),
            ("full plan (default: text K/V reuse on)", accel.Plan(cache=full))]
    print("\nwrapper overhead: raw time / wrapped time (1.000 = none; < 1 = slower)")
    for name, plan in rows:
        print(f"  {name:52s} {paired_ratio(generate, timed_with(model, generate, plan), args.pairs)}")

    print("\nFORA every-n: FLOP ratio (exact) vs wall ratio (raw / plan)")
    for n in (2, 3, 4):
        plan = accel.Plan(cache=accel.CacheSchedule.every(layout, STEPS, n))
        with accel.accelerate(model, plan) as handle:
            generate()
            flops = handle.stats().flop_ratio
        wall = paired_ratio(generate, timed_with(model, generate, plan), args.every_pairs)
        print(f"  every-{n}: FLOPs {flops:.2f}x   wall {wall}   share of FLOP saving realised "
              f"{(1 - 1 / wall.median) / (1 - 1 / flops):.0%}")


if __name__ == "__main__":
    main()
