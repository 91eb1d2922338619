import json

import torch

from accel.calibration import load_pipeline
from accel.calibration.train import TrainConfig, train


def _run(tmp_path, name):
    cfg = TrainConfig(batch=4, pool=32, max_steps=3, minutes=5, eval_reserve_s=0, log_every=1, warmup_steps=1)
    out = tmp_path / name
    train(cfg, torch.device("cpu"), out)
    return out


def test_short_cpu_run_saves_a_loadable_model_and_is_reproducible(tmp_path, capsys):
    a = _run(tmp_path, "a")
    log = capsys.readouterr().out
    assert "step 3 loss" in log and "it/s" in log
    extra = json.loads((a / "model_index.json").read_text())["extra"]
    assert extra["steps"] == 3 and extra["final"]
    pipe = load_pipeline(path=a)
    img = pipe("a small red circle in the center on a white background", num_inference_steps=2)
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    b = _run(tmp_path, "b")
    assert torch.equal(img, load_pipeline(path=b)("a small red circle in the center on a white background",
                                                  num_inference_steps=2))


def test_resume_continues_a_saved_model_and_counts_its_steps(tmp_path):
    a = _run(tmp_path, "a")
    cfg = TrainConfig(batch=4, pool=32, max_steps=2, minutes=5, eval_reserve_s=0, log_every=1, warmup_steps=1,
                      resume=str(a))
    b = tmp_path / "b"
    train(cfg, torch.device("cpu"), b)
    extra = json.loads((b / "model_index.json").read_text())["extra"]
    assert extra["steps"] == 2 and extra["steps_total"] == 5 and len(extra["history"]) == 2
    before, after = load_pipeline(path=a).transformer, load_pipeline(path=b).transformer
    assert any(not torch.equal(p, q) for p, q in zip(before.parameters(), after.parameters()))


def test_resume_can_switch_the_text_encoder_attention(tmp_path):
    a = tmp_path / "a"
    cfg = TrainConfig(batch=4, pool=32, max_steps=1, minutes=5, eval_reserve_s=0, log_every=1, warmup_steps=1)
    cfg.model.text_attention = "full"
    train(cfg, torch.device("cpu"), a)
    assert load_pipeline(path=a).text_encoder.attention == "full"
    cfg = TrainConfig(batch=4, pool=32, max_steps=1, minutes=5, eval_reserve_s=0, log_every=1, warmup_steps=1,
                      resume=str(a), text_attention="clause")
    train(cfg, torch.device("cpu"), tmp_path / "b")
    pipe = load_pipeline(path=tmp_path / "b")
    assert pipe.text_encoder.attention == "clause" and pipe.config.text_attention == "clause"
    assert json.loads((tmp_path / "b" / "model_index.json").read_text())["text_attention"] == "clause"
