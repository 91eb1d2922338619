import numpy as np

import accel
from accel.search.operators import CacheMutation, Grid, heuristic_seeds, warped_steps
from tiny import tiny_pipeline


def test_warped_steps_known_values_and_warp_zero_is_fora():
    assert warped_steps(20, 5) == [0, 3, 7, 13, 17]
    assert warped_steps(20, 4) == [0, 4, 10, 16]
    assert warped_steps(20, 5, warp=0.0) == [0, 4, 8, 12, 16]  # FORA every-4
    assert warped_steps(20, 10, warp=0.0) == list(range(0, 20, 2))
    assert all(s[0] == 0 and s[-1] < 20 for k in range(2, 21) for s in [warped_steps(20, k)])


def test_seeds_include_warped_fora_with_fora_cost():
    layout = accel.layout_of(tiny_pipeline().transformer)
    seeds = heuristic_seeds(layout, 20)
    for k, n in ((10, 2), (7, 3), (5, 4), (4, 5)):
        warped, fora = seeds[f"warped-{k}"].mask, seeds[f"fora-{n}"].mask
        assert warped.sum() == fora.sum() and not np.array_equal(warped, fora)
        assert np.where(warped.all(1))[0].tolist() == warped_steps(20, k)
    assert all(s.mask[0].all() and not s.mask.all() for s in seeds.values())


class ScriptedRng:
    """Answers the mutation's draws from a script, to force one structured move."""

    def __init__(self, ints):
        self.ints = list(ints)

    def integers(self, *args, **kwargs):
        return self.ints.pop(0)

    def random(self, *args):
        return 0.9 if not args else np.ones(args[0])


def test_step_swap_moves_work_in_time_at_equal_cost():
    layout = accel.layout_of(tiny_pipeline().transformer)
    grid = Grid(layout, 6)
    mask = accel.CacheSchedule.every(layout, 6, 3).mask.copy()  # computes steps 0 and 3
    CacheMutation(grid)._move(mask, ScriptedRng([3, 3]))  # kind 3 (swap), step 3 <-> 4
    assert np.where(mask.all(1))[0].tolist() == [0, 4] and mask.sum() == 2 * layout.n_cells
