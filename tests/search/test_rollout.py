import numpy as np
import torch

from accel.search.rollout import Rollout
from accel.search.samplers import shapes_sampler
from tiny import PROMPTS, tiny_pipeline


def test_sampler_is_bitwise_the_pipeline():
    pipe = tiny_pipeline()
    sampler = shapes_sampler(pipe, PROMPTS, 6)
    full = np.ones((6, Rollout(sampler).layout.n_cells), dtype=bool)
    images = Rollout(sampler).run([full], share_prefixes=False)[0]
    assert torch.equal(images, pipe(PROMPTS, num_inference_steps=6))


def test_prefix_sharing_is_bitwise_the_plain_run_and_saves_calls():
    pipe = tiny_pipeline()
    rng = np.random.default_rng(0)
    n = Rollout(shapes_sampler(pipe, PROMPTS, 6)).layout.n_cells
    masks = [rng.random((6, n)) > 0.3 for _ in range(10)]
    for m in masks:
        m[0] = True
    masks += [np.where(np.arange(6)[:, None] < 3, True, m) for m in masks[:5]]  # shared 3-step prefixes
    masks[3][:, 0] = True  # a cell this plan never reuses, that others sharing its prefix do
    plain = Rollout(shapes_sampler(pipe, PROMPTS, 6)).run(masks, share_prefixes=False)
    sharing = Rollout(shapes_sampler(pipe, PROMPTS, 6))
    shared = sharing.run(masks, share_prefixes=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, shared))
    assert sharing.stats.calls + sharing.stats.calls_shared == 6 * len(masks)
    assert sharing.stats.calls_shared >= 5 * 3 + 9  # every plan shares step 0; the derived ones share 3
