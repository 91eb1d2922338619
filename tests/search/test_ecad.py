import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import accel
from accel.search.ecad import ECADConfig, run_ecad
from accel.search.front import ParetoFront, non_dominated
from accel.search.samplers import shapes_sampler
from run_ecad_child import GENERATIONS, config
from tiny import PROMPTS, tiny_flux_sampler, tiny_pipeline

CHILD = Path(__file__).with_name("run_ecad_child.py")


def front_table(front):
    return [(p.plan.cache.key(), round(p.metrics["flop_ratio"], 9), round(p.metrics["psnr"], 9)) for p in front.points]


def quiet(line):
    pass


def test_same_seed_same_front_and_front_is_non_dominated(tmp_path):
    sampler = shapes_sampler(tiny_pipeline(), PROMPTS, 5)
    a = run_ecad(sampler, tmp_path / "a", config(), log=quiet)
    b = run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), tmp_path / "b", config(), log=quiet)
    assert front_table(a) == front_table(b) and len(a.points) >= 3
    # no evaluation in the store dominates a front point; every front point is an evaluation
    import optuna
    study = optuna.load_study(study_name="ecad", storage=f"sqlite:///{tmp_path / 'a' / 'study.db'}")
    values = np.array([t.values for t in study.trials])
    assert len(values) == len({t.user_attrs["mask"] for t in study.trials})  # no plan evaluated twice
    front_values = np.array([[p.metrics["flop_ratio"], p.metrics["psnr"]] for p in a.points])
    both = np.concatenate([front_values, values])
    keep = non_dominated(both, [1, 1])
    assert keep[: len(front_values)].all()
    assert all(p.plan.cache.mask[0].all() and not p.plan.cache.mask.all() for p in a.points)  # the constraints


def test_killed_search_resumes_without_repeating_an_evaluation(tmp_path):
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, str(CHILD), str(out)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("gen   1"):
            child.send_signal(signal.SIGKILL)  # mid-search: generation 2 may be under way
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    import optuna
    done_before = len(optuna.load_study(study_name="ecad", storage=f"sqlite:///{out / 'study.db'}").trials)
    assert done_before >= 16

    log = []
    resumed = run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), out, config(), log=log.append)
    fresh = run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), tmp_path / "fresh", config(), log=quiet)
    assert front_table(resumed) == front_table(fresh)
    # the replayed generations came from the store; nothing finished before the kill ran again
    assert "(+0, 8 from store)" in log[0] and "(+0, 8 from store)" in log[1]
    study = optuna.load_study(study_name="ecad", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == len({t.user_attrs["mask"] for t in study.trials})
    assert len(log) == GENERATIONS


def test_store_refuses_another_setup(tmp_path):
    run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), tmp_path, ECADConfig(steps=5, population=8,
                                                                              max_generations=1), log=quiet)
    with pytest.raises(accel.AccelError, match="holds a search for another setup"):
        run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), tmp_path,
                 ECADConfig(steps=5, population=8, max_generations=1, seed=9), log=quiet)


def test_front_folder_pick_and_refusal(tmp_path):
    front = run_ecad(shapes_sampler(tiny_pipeline(), PROMPTS, 5), tmp_path, config(), log=quiet)
    loaded = ParetoFront.load(tmp_path)
    assert front_table(loaded) == front_table(front)
    assert (tmp_path / "front.png").stat().st_size > 1000
    ratios = [p.metrics["flop_ratio"] for p in loaded.points]
    target = sorted(ratios)[len(ratios) // 2]
    plan = loaded.pick(min_speedup=target)
    chosen = next(p for p in loaded.points if p.plan.cache == plan.cache)
    eligible = [p for p in loaded.points if p.metrics["flop_ratio"] >= target]
    assert chosen.metrics["psnr"] == max(p.metrics["psnr"] for p in eligible)
    floor = sorted(p.metrics["psnr"] for p in loaded.points)[1]
    plan = loaded.pick(min_quality=floor)
    chosen = next(p for p in loaded.points if p.plan.cache == plan.cache)
    assert chosen.metrics["flop_ratio"] == max(p.metrics["flop_ratio"] for p in loaded.points if p.metrics["psnr"] >= floor)
    with pytest.raises(accel.AccelError, match="no point of this front has speed-up >= 100.*the closest is point"):
        loaded.pick(min_speedup=100)
    with pytest.raises(accel.AccelError, match="unknown metric 'fid'"):
        loaded.pick(min_quality={"fid": 3})
    # the plan runs on its model, and is refused by another model or step count
    pipe = tiny_pipeline()
    with accel.accelerate(pipe, plan):
        pipe(PROMPTS, num_inference_steps=5)
    with pytest.raises(accel.PlanMismatchError, match="made for 5 denoising steps, not 8"):
        with accel.accelerate(pipe, plan):
            pipe(PROMPTS, num_inference_steps=8)
    with pytest.raises(accel.PlanMismatchError, match="another model layout"):
        accel.accelerate(tiny_pipeline(layers=3), plan)


def test_mechanics_on_flux(tmp_path):
    sampler = tiny_flux_sampler(5)
    front = run_ecad(sampler, tmp_path, ECADConfig(steps=5, population=8, max_generations=2), log=quiet)
    assert front.points and all(p.metrics["flop_ratio"] > 1 for p in front.points)
    assert front.points[0].plan.cache.layout.family == "flux"
