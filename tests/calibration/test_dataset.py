import torch

from accel.calibration import dataset as ds
from accel.calibration import grammar as g
from accel.calibration.prompts import build_prompt_sets, load_prompts


def _batch(seed, n=64, **kw):
    return ds.sample_scenes(n, torch.Generator().manual_seed(seed), **kw)


def test_same_seed_same_scenes_and_pixels():
    a, b = _batch(3), _batch(3)
    for k, v in vars(a).items():
        assert torch.equal(v, getattr(b, k)), k
    assert torch.equal(ds.render(a), ds.render(b))
    assert a.prompts() == b.prompts()
    assert _batch(4).prompts() != a.prompts()


def test_render_range_and_background():
    b = _batch(0, 32)
    img = ds.render(b)
    assert img.shape == (32, 3, 32, 32) and img.min() >= 0 and img.max() <= 1
    # A corner pixel two-object scenes never touch is the background colour.
    two = b.present[:, 1]
    bg = torch.tensor(ds.BACKGROUND_RGB)[b.background] + b.background_jitter
    assert torch.allclose(img[two, :, 16, 0], bg[two].clamp(0, 1), atol=1e-6)


def test_tokens_match_grammar():
    b = _batch(1, 200)
    assert ds.tokens_of(b).tolist() == g.tokenize(b.prompts())
    assert [g.parse_prompt(p) for p in b.prompts()] == [b.scene(i) for i in range(len(b))]


def test_held_out_combinations():
    train = _batch(2, 2000, held_out="exclude")
    only = _batch(2, 500, held_out="only")

    def hits(b):
        return [any((o.shape, o.colour, b.background[i].item()) in ds.HELD_OUT for o in b.scene(i).objects)
                for i in range(len(b))]

    assert not any(hits(train))
    assert all(hits(only))


def test_scenes_from_prompts_render_what_they_say():
    prompts = ["a large red square at the top left on a black background"]
    b = ds.scenes_from_prompts(prompts, torch.Generator().manual_seed(0))
    img = ds.render(b)[0]
    assert torch.allclose(img[:, 8, 8], torch.tensor(ds.COLOUR_RGB[0]) + b.colour_jitter[0, 0], atol=1e-6)
    assert img[:, 24, 24].max() < 0.1


def test_prompt_sets():
    cal, test = load_prompts("calibration"), load_prompts("test")
    assert len(cal) >= 64 and len(test) >= 256
    assert len(set(test)) == len(test) and not set(cal) & set(test)
    assert build_prompt_sets() == {"calibration": cal, "test": test}  # the files are what the code makes

    def unseen(p):
        s = g.parse_prompt(p)
        return any((o.shape, o.colour, s.background) in ds.HELD_OUT for o in s.objects)

    assert not any(unseen(p) for p in cal)
    assert sum(unseen(p) for p in test) >= len(test) // 2
    assert any(" and " in p for p in test) and any(" and " not in p for p in test)
