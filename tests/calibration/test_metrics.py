import math

import pytest
import torch

from accel.calibration import dataset as ds
from accel.calibration.metrics import AttributeClassifier, frechet_distance, psnr, ssim
from accel.calibration.prompts import load_prompts


@pytest.fixture(scope="module")
def clf():
    return AttributeClassifier.load()


@pytest.fixture(scope="module")
def real():
    prompts = load_prompts("test")[:160]
    return ds.render(ds.scenes_from_prompts(prompts, torch.Generator().manual_seed(5))), prompts


def test_psnr_ssim_identical():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.allclose(ssim(x, x), torch.ones(4))


def test_psnr_known_value_and_ssim_drops():
    x = torch.full((2, 3, 32, 32), 0.5)
    assert torch.allclose(psnr(x, x + 0.1), torch.full((2,), 20.0), atol=1e-4)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    s = ssim(noisy, x)
    assert (s < 0.5).all() and (s > -1).all()


def test_shapes_must_match():
    with pytest.raises(ValueError):
        psnr(torch.zeros(1, 3, 32, 32), torch.zeros(2, 3, 32, 32))


def test_classifier_reads_rendered_ground_truth(clf, real):
    images, prompts = real
    acc = clf.attribute_accuracy(images, prompts)
    assert set(acc) == {"shape", "colour", "size", "position", "background", "prompt"}
    for k, v in acc.items():
        assert v >= 0.97, (k, acc)


def test_classifier_is_deterministic_and_sees_empty_scenes(clf, real):
    images, _ = real
    a, b = clf.predict(images[:16]), clf.predict(images[:16])
    assert all(torch.equal(a[k], b[k]) for k in a)
    blank = torch.ones(2, 3, 32, 32) * 0.96
    assert not clf.predict(blank)["occupied"].any()


def test_frechet_distance(clf, real):
    images, _ = real
    same = frechet_distance(images, images, classifier=clf)
    assert abs(same) < 1e-6
    to_ref = frechet_distance(images, classifier=clf)
    noise = frechet_distance(torch.rand(160, 3, 32, 32, generator=torch.Generator().manual_seed(0)), classifier=clf)
    assert math.isfinite(to_ref) and noise > 10 * to_ref
    assert frechet_distance(images, classifier=clf) == to_ref
