"""Measure a saved shapes model on the test prompts: attribute accuracy per CFG scale (overall, held-out vs seen
combinations, one vs two objects) and the Frechet distance to held-out real images; saves a sample grid.

    python -m accel.calibration.evaluate [--model DIR] [--scales 3.0] [--steps 20] [--prompts 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from accel.calibration.model import DEFAULT_DIR


def evaluate(out: Path, device: torch.device, n_prompts: int, scales: list[float], steps: int = 20,
             grid: Path | None = None) -> dict:
    """Attribute accuracy of the saved model on the test prompts, per CFG scale; also split by seen/unseen
    combinations and one/two objects at the best scale."""
    from accel.calibration.dataset import HELD_OUT
    from accel.calibration.grammar import parse_prompt
    from accel.calibration.grid import save_grid
    from accel.calibration.metrics import AttributeClassifier, frechet_distance
    from accel.calibration.pipeline import load_pipeline
    from accel.calibration.prompts import load_prompts

    prompts = load_prompts("test")
    prompts = prompts[:n_prompts] if n_prompts else prompts
    pipe = load_pipeline(device=device, path=out)
    clf = AttributeClassifier.load()
    results, images = {}, {}
    for s in scales:
        t0 = time.time()
        images[s] = pipe(prompts, num_inference_steps=steps, guidance_scale=s, seed=0,
                         batch_size=512 if device.type == "cuda" else 64).cpu()
        results[s] = clf.attribute_accuracy(images[s], prompts)
        results[s]["fid"] = frechet_distance(images[s], classifier=clf)
        print(f"eval cfg {s}: " + " ".join(f"{k} {v:.3f}" for k, v in results[s].items())
              + f" ({len(prompts)} test prompts, {steps} steps, {time.time() - t0:.1f}s)", flush=True)
    best = max(scales, key=lambda s: (results[s]["prompt"], results[s]["shape"]))
    scenes = [parse_prompt(p) for p in prompts]
    unseen = [any((o.shape, o.colour, sc.background) in HELD_OUT for o in sc.objects) for sc in scenes]
    groups = {"unseen_combinations": unseen, "seen_combinations": [not u for u in unseen],
              "one_object": [len(sc.objects) == 1 for sc in scenes], "two_objects": [len(sc.objects) == 2 for sc in scenes]}
    split = {}
    for name, mask in groups.items():
        idx = [i for i, m in enumerate(mask) if m]
        if idx:
            split[name] = clf.attribute_accuracy(images[best][idx], [prompts[i] for i in idx])
            print(f"  cfg {best} {name} ({len(idx)}): " + " ".join(f"{k} {v:.3f}" for k, v in split[name].items()))
    save_grid(images[best][:64], grid or out.parent / f"{out.name}-samples.png", nrow=8)
    return {"guidance_scale": best, "steps": steps, "n_prompts": len(prompts),
            "by_scale": {str(k): v for k, v in results.items()}, "split": split}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_DIR)
    p.add_argument("--device", default="cpu")
    p.add_argument("--scales", type=float, nargs="+", default=None, help="CFG scales (default: the model's)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--prompts", type=int, default=0, help="first N test prompts (0 = all)")
    p.add_argument("--grid", type=Path, default=Path("shapes-samples.png"))
    a = p.parse_args(argv)
    if a.scales is None:
        from accel.calibration.pipeline import load_pipeline

        a.scales = [load_pipeline(path=a.model).config.guidance_scale]
    evaluate(a.model, torch.device(a.device), a.prompts, a.scales, a.steps, a.grid)


if __name__ == "__main__":
    main()
