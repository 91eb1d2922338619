import json

import numpy as np
import pytest
import torch

import accel
from models import ALL, STEPS, flux, pixart
from reference import model_state, same_state


@pytest.fixture
def layout():
    return accel.layout_of(pixart().model)


def test_every_n_is_fora(layout):
    sched = accel.CacheSchedule.every(layout, 7, 3)
    np.testing.assert_array_equal(sched.mask.all(axis=1), [True, False, False, True, False, False, True])
    assert not sched.mask[1:3].any()


def test_per_component_variants(layout):
    sched = accel.CacheSchedule.every(layout, 4, 2, components=["ff"])
    for (block, comp), col in zip(layout.cells, sched.mask.T):
        expected = [True, False, True, False] if comp == "ff" else [True] * 4
        assert col.tolist() == expected, (block, comp)
    tgate = accel.CacheSchedule.stop_after(layout, 5, 2)
    assert [sched_row for sched_row in tgate.mask[:, 1]] == [True, True, False, False, False]
    assert tgate.mask[:, 0].all()


def test_plan_json_round_trip(layout, tmp_path):
    mask = np.random.default_rng(0).random((5, layout.n_cells)) > 0.5
    mask[0] = True
    plan = accel.Plan(cache=accel.CacheSchedule(layout, mask), model_name="tiny", produced_by={"method": "test"},
                      metrics={"psnr": 31.5})
    path = plan.save(tmp_path / "plan.json")
    loaded = accel.Plan.load(path)
    assert loaded.cache == plan.cache and loaded.metrics == {"psnr": 31.5} and loaded.model_name == "tiny"
    data = json.loads(path.read_text())
    assert data["accel_plan"] == 1 and data["steps"] == 5
    assert data["cache"]["schedule"]["1"]["transformer_blocks.0"]["attn1"] == bool(mask[1, 0])


def test_step_zero_must_compute(layout):
    mask = np.ones((3, layout.n_cells), dtype=bool)
    mask[0, 4] = False
    with pytest.raises(accel.PlanError, match="step 0 must compute"):
        accel.CacheSchedule(layout, mask)


def test_unknown_names_are_refused(layout):
    with pytest.raises(accel.LayoutError, match="unknown component"):
        accel.CacheSchedule.every(layout, 4, 2, components=["attn3"])
    with pytest.raises(accel.LayoutError, match="unknown block 'blocks.0'"):
        accel.CacheSchedule.from_cells(layout, 4, {1: {"blocks.0": ["attn1"]}})
    with pytest.raises(accel.LayoutError, match="has no component 'attn3'"):
        accel.CacheSchedule.from_cells(layout, 4, {1: {"transformer_blocks.0": ["attn3"]}})


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("cache"), "no 'cache' field"),
    (lambda d: d.update(accel_plan=9), "version 9 is not supported"),
    (lambda d: d["cache"]["schedule"].pop("2"), "none missing; missing \\[2\\]"),
    (lambda d: d["cache"]["schedule"]["1"].pop("transformer_blocks.2"), "missing \\['transformer_blocks.2'\\]"),
    (lambda d: d["cache"]["schedule"]["1"]["transformer_blocks.0"].update(attn1="yes"), "expected true/false"),
    (lambda d: d["cache"]["schedule"]["1"]["transformer_blocks.0"].update(attn9=True), "expected components"),
    (lambda d: d.update(steps=7), "says 7 steps but its schedule has 4"),
    (lambda d: d.update(attention="flash9"), "attention must be one of"),
])
def test_malformed_plans_are_refused(layout, tmp_path, edit, message):
    data = accel.Plan(cache=accel.CacheSchedule.every(layout, 4, 2)).to_json()
    edit(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(accel.PlanError, match=message):
        accel.Plan.load(path)


def test_truncated_plan_file_is_refused(layout, tmp_path):
    path = accel.Plan(cache=accel.CacheSchedule.every(layout, 4, 2)).save(tmp_path / "plan.json")
    path.write_text(path.read_text()[:300])
    with pytest.raises(accel.PlanError, match="not valid JSON .* truncated"):
        accel.Plan.load(path)
    with pytest.raises(accel.PlanError, match="cannot read plan file"):
        accel.Plan.load(tmp_path / "missing.json")


def test_plan_for_another_layout_leaves_model_unchanged():
    target = flux()
    other = accel.layout_of(pixart().model)
    before = model_state(target.model)
    with pytest.raises(accel.PlanMismatchError, match="another model layout .* first difference"):
        accel.accelerate(target.model, accel.Plan(cache=accel.CacheSchedule.every(other, 4, 2)))
    assert same_state(before, model_state(target.model))
    accel.accelerate(target.model).remove()  # nothing was left registered


def test_wrapping_twice_is_refused_and_first_handle_keeps_working():
    case = pixart()
    layout = accel.layout_of(case.model)
    with accel.accelerate(case.model, accel.Plan(cache=accel.CacheSchedule.every(layout, STEPS, 2))) as handle:
        state = model_state(case.model)
        with pytest.raises(accel.AlreadyAcceleratedError, match="remove\\(\\) on that handle"):
            accel.accelerate(case.model)
        assert same_state(state, model_state(case.model))
        with torch.no_grad():
            case.call(case.model, 0)
        assert handle.stats().calls[0] == 1


def test_model_without_blocks_gets_a_clear_error():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    with pytest.raises(accel.LayoutError, match="cannot find the blocks of Sequential.*register_adapter"):
        accel.layout_of(model)
    with pytest.raises(accel.LayoutError, match="expected a torch.nn.Module"):
        accel.layout_of("a pipeline id")
    with pytest.raises(accel.AccelError, match="pipeline with a `transformer` module"):
        accel.accelerate(object())


def test_register_adapter():
    class Stage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer, self.mlp = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return x + self.mixer(x) + self.mlp(x)

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = torch.nn.ModuleList(Stage() for _ in range(2))

        def forward(self, x, timestep):
            for s in self.stages:
                x = s(x)
            return x

    with pytest.raises(accel.LayoutError):
        accel.layout_of(Odd())

    def adapter(model):
        return accel.bind_blocks("odd", [(f"stages.{i}", [accel.ComponentSpec("mixer", "self_attn", accel.Site(s.mixer)),
                                                          accel.ComponentSpec("mlp", "ff", accel.Site(s.mlp))])
                                         for i, s in enumerate(model.stages)])

    accel.register_adapter(adapter, model_class=Odd)
    layout = accel.layout_of(Odd())
    assert layout.cells == [("stages.0", "mixer"), ("stages.0", "mlp"), ("stages.1", "mixer"), ("stages.1", "mlp")]
    assert layout.roles == ["self_attn", "ff", "self_attn", "ff"]


@pytest.mark.parametrize("family, cells", [
    ("pixart", [("transformer_blocks.0", "attn1"), ("transformer_blocks.0", "attn2"), ("transformer_blocks.0", "ff")]),
    ("dit", [("transformer_blocks.0", "attn1"), ("transformer_blocks.0", "ff")]),
    ("sd3", [("transformer_blocks.0", "attn"), ("transformer_blocks.0", "ff"), ("transformer_blocks.0", "ff_context")]),
    ("flux", [("transformer_blocks.0", "attn"), ("transformer_blocks.0", "ff"), ("transformer_blocks.0", "ff_context"),
              ("single_transformer_blocks.0", "attn"), ("single_transformer_blocks.0", "proj_mlp")]),
    ("policy", [("stack.layers.0", "self_attn"), ("stack.layers.0", "cross_attn"), ("stack.layers.0", "ff")]),
    ("generic", [("blocks.0", "attn"), ("blocks.0", "ff")]),
])
def test_layouts(family, cells):
    layout = accel.layout_of(ALL[family]().model)
    assert layout.cells[:len(cells)] == cells
    assert accel.Layout.from_json(layout.to_json()) == layout


def test_layout_block_cells_follow_block_major_order():
    from accel.adapters.base import BlockLayout, Layout

    layout = Layout("toy", (BlockLayout("a", ("x", "y"), ("self_attn", "ff")), BlockLayout("b", ("z",), ("ff",))))
    assert layout.block_cells == [[0, 1], [2]]
    assert [layout.cells[i] for i in layout.block_cells[0]] == [("a", "x"), ("a", "y")]
