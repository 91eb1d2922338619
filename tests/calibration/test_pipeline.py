import pytest
import torch

from accel.calibration import ShapesPipeline, load_pipeline, save_grid
from accel.calibration.model import DEFAULT_DIR
from accel.errors import PromptError

PROMPTS = [
    "a large red square at the top left on a white background",
    "a small blue circle in the center on a black background",
    "a large green triangle at the top right and a small yellow cross at the bottom left on a gray background",
]


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline()


def test_weights_ship_in_the_package_and_load_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for f in ("model_index.json", "transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (DEFAULT_DIR / f).is_file(), f
    size = sum(p.stat().st_size for p in DEFAULT_DIR.rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    p = load_pipeline()
    assert isinstance(p, ShapesPipeline)
    assert type(p.transformer).__name__ == "PixArtTransformer2DModel"
    assert len(p.transformer.transformer_blocks) >= 8


def test_output_types_and_range(pipe, tmp_path):
    x = pipe(PROMPTS, num_inference_steps=2)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert pipe(PROMPTS[0], num_inference_steps=2, output_type="np").shape == (1, 32, 32, 3)
    assert pipe(PROMPTS[:1], num_inference_steps=2, output_type="pil")[0].size == (32, 32)
    path = save_grid(x, tmp_path / "grid.png")
    assert path.stat().st_size > 0


def test_seeded_and_batch_independent(pipe):
    a = pipe(PROMPTS, num_inference_steps=3, seed=7)
    b = pipe(PROMPTS, num_inference_steps=3, seed=7, batch_size=1)
    c = pipe(PROMPTS[:1], num_inference_steps=3, seed=7)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(a[:1], c, atol=1e-4)
    assert torch.equal(a, pipe(PROMPTS, num_inference_steps=3, seed=7))
    assert not torch.allclose(a, pipe(PROMPTS, num_inference_steps=3, seed=8))


def test_one_transformer_call_per_step_on_the_doubled_batch(pipe):
    calls, starts = [], []
    handle = pipe.transformer.register_forward_hook(lambda m, args, kw, out: calls.append(kw["hidden_states"].shape[0]),
                                                    with_kwargs=True)
    original = pipe.scheduler.set_timesteps

    def spy(n, *a, **k):
        starts.append(n)
        return original(n, *a, **k)

    pipe.scheduler.set_timesteps = spy
    try:
        pipe(PROMPTS, num_inference_steps=4, guidance_scale=3.0)
        assert starts == [4] and len(pipe.scheduler.timesteps) == 4 and calls == [6] * 4
        calls.clear()
        pipe(PROMPTS, num_inference_steps=3, guidance_scale=1.0, batch_size=2)
        assert starts == [4, 3, 3] and calls == [2, 2, 2, 1, 1, 1]
    finally:
        handle.remove()
        del pipe.scheduler.set_timesteps


@pytest.mark.parametrize("bad,word", [("a small red hexagon at the top left on a white background", "hexagon"),
                                      ("a photo of a cat", "photo")])
def test_bad_prompts_raise_prompt_error_before_the_model_runs(pipe, bad, word):
    calls = []
    handle = pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(PromptError, match=word):
            pipe([PROMPTS[0], bad], num_inference_steps=2)
        with pytest.raises(PromptError, match="empty"):
            pipe("", num_inference_steps=2)
    finally:
        handle.remove()
    assert calls == []
