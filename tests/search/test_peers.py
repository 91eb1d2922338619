"""Peers (diffusers hooks, cache-dit) through the bench harness, and `accel bench` end to end, on a tiny model."""

import argparse
import builtins
import csv

import pytest
import torch

import accel
import accel.cli
from accel.search import bench_cli, peers
from accel.search.bench import generation_flops, measured_generation, run_methods

from tiny import PROMPTS, tiny_pipeline

STEPS = 5


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return tiny_pipeline()


def _state(model):
    """Everything a peer could leave behind: instance forwards, hook registries, the parameters."""
    return ({n: sorted(vars(m)) for n, m in model.named_modules()},
            {k: v.clone() for k, v in model.state_dict().items()})


def test_fbcache_runs_skips_and_restores_exactly(pipe):
    before_out = pipe(PROMPTS[:2], num_inference_steps=STEPS, seed=0)
    attrs, weights = _state(pipe.transformer)
    aggressive = peers.peer_methods(pipe, STEPS, ["fbcache"], probe_prompts=[])[-1]
    full, (res,) = run_methods(pipe, PROMPTS[:2], STEPS, [aggressive], log=lambda *_: None)
    assert res.flop_ratio > 1.1  # blocks were really skipped, and counted
    assert res.metrics["psnr"] < 100  # the output changed
    with aggressive.apply(pipe):  # while active the transformer's forward is hooked
        assert "forward" in vars(pipe.transformer.transformer_blocks[0])
    after_attrs, after_weights = _state(pipe.transformer)
    assert after_attrs == attrs  # no hooks, registries or instance forwards left
    assert all(torch.equal(weights[k], after_weights[k]) for k in weights)
    assert torch.equal(pipe(PROMPTS[:2], num_inference_steps=STEPS, seed=0), before_out)
    assert torch.equal(full.images, before_out)


def test_peer_flops_are_exact_and_state_resets_between_generations(pipe):
    m = peers.peer_methods(pipe, STEPS, ["taylorseer"], probe_prompts=[])[1]
    full = generation_flops(pipe, PROMPTS[:1], STEPS, 0)
    _, once = measured_generation(pipe, m, PROMPTS[:1], STEPS, 0, full)
    _, again = measured_generation(pipe, m, PROMPTS[:1], STEPS, 0, full)
    assert once == again > 1  # same generation, same count (no state carried over), and fewer FLOPs than full
    with m.apply(pipe):  # two generations in one activation agree: the state is reset at each start
        a = pipe(PROMPTS[:1], num_inference_steps=STEPS, seed=0)
        b = pipe(PROMPTS[:1], num_inference_steps=STEPS, seed=0)
    assert torch.equal(a, b)


def test_missing_package_prints_one_line_and_skips(pipe, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_cache_dit(name, *args, **kwargs):
        if name == "cache_dit" or name.startswith("cache_dit."):
            raise ImportError("No module named 'cache_dit'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cache_dit)
    methods = peers.peer_methods(pipe, STEPS, ["dbcache", "dbcache-taylorseer", "pab"], probe_prompts=[])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(peers.INSTALL_HINT in ln for ln in lines)
    assert {m.family for m in methods} == {"diffusers PAB"}


def test_a_peer_that_fails_on_the_model_is_skipped(pipe, monkeypatch, capsys):
    def broken(pipe, steps):
        return [peers._method("broken", "broken", peers._diffusers_peer(
            lambda model, config: (_ for _ in ()).throw(RuntimeError("no blocks")), lambda c: None))]

    monkeypatch.setitem(peers.REGISTRY, "pab", broken)
    attrs, _ = _state(pipe.transformer)
    assert peers.peer_methods(pipe, STEPS, ["pab"], probe_prompts=PROMPTS[:1]) == []
    assert "skipping pab" in capsys.readouterr().out
    assert _state(pipe.transformer)[0] == attrs


def test_bench_command_writes_tables_and_plots(pipe, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(accel.cli, "load_pipeline", lambda spec: pipe)
    layout = accel.layout_of(pipe.transformer)
    plan_file = tmp_path / "every2.json"
    accel.Plan(cache=accel.CacheSchedule.every(layout, STEPS, 2)).save(plan_file)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:2]) + "\n")
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser.add_subparsers())
    args = parser.parse_args(["bench", "--prompts", str(prompts), "--steps", str(STEPS),
                              "--methods", "full,fbcache,plans", "--plans", str(plan_file), "--out", str(tmp_path / "out"), "--wall-pairs", "1",
                              "--wall-prompts", "1"])
    assert args.run(args) == 0
    out = tmp_path / "out"
    for name in ("table.md", "table.csv", "bench.png", "grid.png", "headline.txt"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["family"] for r in rows][:1] == ["full"] and len(rows) == 1 + 4 + 1
    assert {"diffusers FirstBlockCache", "accel plan every2"} <= {r["family"] for r in rows}
    printed = capsys.readouterr().out
    assert "HEADLINE" in printed and "[5/5]" in printed


def test_parse_methods_expands_peers_and_rejects_unknown():
    assert bench_cli.parse_methods("full,peers")[1:] == list(peers.PEERS)
    with pytest.raises(accel.AccelError):
        bench_cli.parse_methods("full,teacache")
