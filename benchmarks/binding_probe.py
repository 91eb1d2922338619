"""Does the prompt encoder bind each object's words to that object? A linear probe on the encoder's output.

For random two-object prompts, a linear classifier is fitted on one token's output vector (5,000 prompts) to
predict an attribute of the same object, and scored on 1,000 others: e.g. the first object's colour word ->
the first object's corner (chance 25%). An encoder that binds puts the corner into the colour word.

    python benchmarks/binding_probe.py [--model DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from accel.calibration import dataset as ds
from accel.calibration.model import DEFAULT_DIR, load_models

# token index in a two-object prompt: BOS, a, size, colour, shape, at, the, corner, corner, and, a, size, colour, ...
PROBES = (("object 1 colour word -> its corner", 3, "position", 0),
          ("object 1 shape word -> its corner", 4, "position", 0),
          ("object 2 colour word -> its corner", 12, "position", 1),
          ("object 1 corner word -> its colour", 8, "colour", 0),
          ("object 1 corner word -> its shape", 8, "shape", 0),
          ("object 2 corner word -> its shape", 17, "shape", 1))


def probe(features: torch.Tensor, labels: torch.Tensor, n_train: int = 5000, steps: int = 400) -> float:
    torch.manual_seed(0)
    classes = int(labels.max()) + 1
    w = torch.zeros(features.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    x, y = features[:n_train], labels[:n_train]
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(x @ w + b, y).backward()
        opt.step()
    with torch.no_grad():
        return float(((features[n_train:] @ w + b).argmax(1) == labels[n_train:]).float().mean())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_DIR)
    a = p.parse_args(argv)
    _, _, encoder, _ = load_models(a.model)
    scenes = ds.sample_scenes(6000, torch.Generator().manual_seed(5), p_two=1.0, held_out="include")
    with torch.no_grad():
        h = encoder.eval()(ds.tokens_of(scenes))
    print(f"{a.model} (attention: {encoder.attention}); linear probe accuracy on 1,000 two-object prompts")
    for name, token, attribute, obj in PROBES:
        print(f"  {name}: {probe(h[:, token], getattr(scenes, attribute)[:, obj]):.3f}")


if __name__ == "__main__":
    main()
