"""The procedural shapes data set: random scenes (deterministic from a seed), their prompts, and a vectorised renderer.

Scenes are sampled on the CPU with a seeded torch.Generator (so a seed gives the same scenes on every device) and
rendered with plain tensor arithmetic on any device: each object is drawn at 4x4 supersampling and averaged down,
so edges are anti-aliased and sub-pixel jitter shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from accel.calibration import grammar as g

IMAGE_SIZE = 32
SUPERSAMPLE = 4
SIZE_PX = (10.0, 15.0)  # bounding-box side of small and large shapes: big enough to tell shapes apart at 32x32
# Each object's centre may move up to this far from its slot centre, uniformly. The model's data set keeps the
# slots exact (models trained with a 1-px jitter drew round blobs; see README); the attribute classifier still
# trains with jitter (train_classifier) so that it reads imperfect images.
JITTER_PX = 0.0
CENTRES_PX = ((8.0, 8.0), (24.0, 8.0), (8.0, 24.0), (24.0, 24.0), (16.0, 16.0))  # (x, y) of each POSITION
COLOUR_RGB = (
    (0.90, 0.12, 0.12),  # red
    (0.10, 0.70, 0.15),  # green
    (0.12, 0.25, 0.95),  # blue
    (0.95, 0.85, 0.10),  # yellow
    (0.60, 0.15, 0.80),  # purple
    (0.10, 0.80, 0.85),  # cyan
)
BACKGROUND_RGB = ((0.96, 0.96, 0.96), (0.06, 0.06, 0.06), (0.50, 0.50, 0.50))  # white, black, gray
COLOUR_JITTER, BACKGROUND_JITTER = 0.05, 0.03

# (shape, colour, background) triples never drawn in training scenes: the test prompts use them to measure how
# the model composes attributes it has only seen apart. Each shape, colour and background is held out at least once.
HELD_OUT = frozenset(
    (g.SHAPES.index(s), g.COLOURS.index(c), g.BACKGROUNDS.index(b))
    for s, c, b in [
        ("circle", "purple", "white"), ("circle", "yellow", "black"),
        ("square", "cyan", "gray"), ("square", "red", "white"),
        ("triangle", "green", "black"), ("triangle", "blue", "gray"),
        ("cross", "cyan", "black"), ("cross", "yellow", "gray"),
    ]
)


@dataclass
class SceneBatch:
    """A batch of n scenes as CPU tensors. Object slot 1 is used only where present[:, 1]."""

    shape: torch.Tensor  # (n, 2) long, index into grammar.SHAPES
    colour: torch.Tensor  # (n, 2) long
    size: torch.Tensor  # (n, 2) long
    position: torch.Tensor  # (n, 2) long, index into grammar.POSITIONS
    present: torch.Tensor  # (n, 2) bool
    background: torch.Tensor  # (n,) long
    jitter: torch.Tensor  # (n, 2, 2) float, centre offset in pixels
    colour_jitter: torch.Tensor  # (n, 2, 3) float
    background_jitter: torch.Tensor  # (n, 3) float

    def __len__(self) -> int:
        return self.shape.shape[0]

    def scene(self, i: int) -> g.Scene:
        objs = tuple(
            g.SceneObject(int(self.shape[i, k]), int(self.colour[i, k]), int(self.size[i, k]),
                          int(self.position[i, k]))
            for k in range(2) if self.present[i, k]
        )
        return g.Scene(objs, int(self.background[i]))

    def prompts(self) -> list[str]:
        return [g.scene_to_prompt(self.scene(i)) for i in range(len(self))]


def _held_out_mask(shape: torch.Tensor, colour: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    key = (shape * len(g.COLOURS) + colour) * len(g.BACKGROUNDS) + background[:, None]
    table = torch.zeros(len(g.SHAPES) * len(g.COLOURS) * len(g.BACKGROUNDS), dtype=torch.bool)
    for s, c, b in HELD_OUT:
        table[(s * len(g.COLOURS) + c) * len(g.BACKGROUNDS) + b] = True
    return table[key]


def _jitters(n: int, gen: torch.Generator, jitter_px: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    jitter = (torch.rand(n, 2, 2, generator=gen) * 2 - 1) * jitter_px
    cj = (torch.rand(n, 2, 3, generator=gen) * 2 - 1) * COLOUR_JITTER
    bj = (torch.rand(n, 3, generator=gen) * 2 - 1) * BACKGROUND_JITTER
    return jitter, cj, bj


def sample_scenes(n: int, generator: torch.Generator, p_two: float = 0.35, held_out: str = "exclude",
                  jitter_px: float = JITTER_PX) -> SceneBatch:
    """n random scenes. held_out: 'exclude' (training), 'include' (any scene), or 'only' (>= 1 held-out object)."""
    gen = generator
    shape = torch.randint(len(g.SHAPES), (n, 2), generator=gen)
    colour = torch.randint(len(g.COLOURS), (n, 2), generator=gen)
    size = torch.randint(len(g.SIZES), (n, 2), generator=gen)
    background = torch.randint(len(g.BACKGROUNDS), (n,), generator=gen)
    two = torch.rand(n, generator=gen) < p_two
    corners = torch.argsort(torch.rand(n, 4, generator=gen), dim=1)[:, :2]
    single_pos = torch.randint(len(g.POSITIONS), (n,), generator=gen)
    position = torch.where(two[:, None], corners, torch.stack([single_pos, corners[:, 1]], 1))
    present = torch.stack([torch.ones(n, dtype=torch.bool), two], 1)
    # Resampling loop: replace what violates the held-out rule until nothing does (a few rounds at most).
    for _ in range(100):
        hit = _held_out_mask(shape, colour, background) & present
        if held_out == "exclude":
            bad = hit
        elif held_out == "only":
            bad = (~hit.any(1, keepdim=True)) & present
        else:
            break
        if not bad.any():
            break
        shape = torch.where(bad, torch.randint(len(g.SHAPES), (n, 2), generator=gen), shape)
        colour = torch.where(bad, torch.randint(len(g.COLOURS), (n, 2), generator=gen), colour)
    jitter, cj, bj = _jitters(n, gen, jitter_px)
    return SceneBatch(shape, colour, size, position, present, background, jitter, cj, bj)


def scenes_from_prompts(prompts: list[str], generator: torch.Generator) -> SceneBatch:
    """Ground-truth scenes of prompts (parsed by the grammar), with random jitter from the generator."""
    scenes = [g.parse_prompt(p) for p in prompts]
    n = len(scenes)
    cols = {k: torch.zeros(n, 2, dtype=torch.long) for k in ("shape", "colour", "size", "position")}
    present = torch.zeros(n, 2, dtype=torch.bool)
    for i, s in enumerate(scenes):
        for k, o in enumerate(s.objects):
            present[i, k] = True
            for name in cols:
                cols[name][i, k] = getattr(o, name)
    background = torch.tensor([s.background for s in scenes], dtype=torch.long)
    jitter, cj, bj = _jitters(n, generator, JITTER_PX)
    return SceneBatch(present=present, background=background, jitter=jitter, colour_jitter=cj,
                      background_jitter=bj, **cols)


def _shape_mask(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside-mask of one shape in coordinates scaled to the half-size (|u|, |v| <= 1 is the bounding box)."""
    au, av = u.abs(), v.abs()
    if shape == 0:  # circle
        return u * u + v * v <= 1.0
    if shape == 1:  # square, about the circle's area, so area alone does not tell them apart
        return torch.maximum(au, av) <= 0.88
    if shape == 2:  # triangle, apex up, base at the bottom of the box
        return (v <= 1.0) & (au <= (v + 1.0) / 2.0)
    return ((au <= 0.34) & (av <= 1.0)) | ((av <= 0.34) & (au <= 1.0))  # cross


def render(batch: SceneBatch, device: torch.device | str = "cpu") -> torch.Tensor:
    """Images (n, 3, 32, 32) float32 in [0, 1] on `device`."""
    dev = torch.device(device)
    n, s = len(batch), IMAGE_SIZE * SUPERSAMPLE
    coords = (torch.arange(s, device=dev, dtype=torch.float32) + 0.5) / SUPERSAMPLE
    bg = torch.tensor(BACKGROUND_RGB, device=dev)[batch.background.to(dev)] + batch.background_jitter.to(dev)
    img = bg[:, :, None, None].expand(n, 3, IMAGE_SIZE, IMAGE_SIZE).clamp(0, 1)
    centres = torch.tensor(CENTRES_PX, device=dev)
    palette = torch.tensor(COLOUR_RGB, device=dev)
    sizes = torch.tensor(SIZE_PX, device=dev)
    for k in range(2):
        c = centres[batch.position[:, k].to(dev)] + batch.jitter[:, k].to(dev)  # (n, 2)
        half = sizes[batch.size[:, k].to(dev)] / 2  # (n,)
        u = (coords[None, None, :] - c[:, 0, None, None]) / half[:, None, None]  # (n, 1, s)
        v = (coords[None, :, None] - c[:, 1, None, None]) / half[:, None, None]  # (n, s, 1)
        shapes = batch.shape[:, k].to(dev)
        uu, vv = u.expand(n, s, s), v.expand(n, s, s)
        if dev.type == "cpu":  # draw each shape only where it is used (4x less work on a CPU)
            mask = torch.zeros(n, s, s, dtype=torch.bool)
            for sh in range(len(g.SHAPES)):
                idx = (shapes == sh).nonzero()[:, 0]
                if idx.numel():
                    mask[idx] = _shape_mask(sh, uu[idx], vv[idx])
        else:  # draw all and select: no host-device synchronisation, so rendering overlaps training
            mask = _shape_mask(len(g.SHAPES) - 1, uu, vv)
            for sh in range(len(g.SHAPES) - 1):
                mask = torch.where((shapes == sh)[:, None, None], _shape_mask(sh, uu, vv), mask)
        alpha = torch.nn.functional.avg_pool2d(mask[:, None].float(), SUPERSAMPLE)  # (n, 1, 32, 32)
        alpha = alpha * batch.present[:, k].to(dev)[:, None, None, None]
        rgb = (palette[batch.colour[:, k].to(dev)] + batch.colour_jitter[:, k].to(dev)).clamp(0, 1)
        img = img * (1 - alpha) + rgb[:, :, None, None] * alpha
    return img.clamp(0, 1)


_OBJECT_TOKENS: dict[tuple[int, int, int, int], list[int]] = {}


def _object_tokens(shape: int, colour: int, size: int, position: int) -> list[int]:
    key = (shape, colour, size, position)
    if key not in _OBJECT_TOKENS:
        phrase = g.object_phrase(g.SceneObject(*key))
        _OBJECT_TOKENS[key] = [g.TOKEN_IDS[w] for w in phrase.split()]
    return _OBJECT_TOKENS[key]


def tokens_of(batch: SceneBatch) -> torch.Tensor:
    """Token ids (n, MAX_TOKENS) of the scenes' prompts, equal to grammar.tokenize(batch.prompts()) but fast."""
    t = g.TOKEN_IDS
    cols = [x.tolist() for x in (batch.shape, batch.colour, batch.size, batch.position, batch.present)]
    bgs = batch.background.tolist()
    out = []
    for i in range(len(batch)):
        ids = [g.BOS_ID]
        for k in range(2):
            if cols[4][i][k]:
                if k:
                    ids.append(t["and"])
                ids += _object_tokens(cols[0][i][k], cols[1][i][k], cols[2][i][k], cols[3][i][k])
        ids += [t["on"], t["a"], t[g.BACKGROUNDS[bgs[i]]], t["background"]]
        out.append(ids + [g.PAD_ID] * (g.MAX_TOKENS - len(ids)))
    return torch.tensor(out, dtype=torch.long)
