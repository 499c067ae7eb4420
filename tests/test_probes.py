import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from unpoison.influence.probes import augmentation_families, build_probe_set, draw_random_labels


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_every_augmentation_is_valid_and_stays_in_unit_range(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    families = augmentation_families(shape[-1], shape[0])
    assert ("color_switch" in families) == (shape[0] == 3)
    for name, fn in families.items():
        y = fn(x)
        assert y.shape == x.shape, name
        assert float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6, name


def test_random_labels_exclude_query_label_and_are_distinct_when_possible():
    rng = np.random.default_rng(0)
    few = draw_random_labels(3, 10, 50, rng)
    assert 3 not in few and len(few) == 50
    many = draw_random_labels(7, 100, 50, rng)
    assert 7 not in many and len(set(many.tolist())) == 50


def test_probes_share_draws_and_keep_labels_right():
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    y = torch.tensor([4, 9])
    ps = build_probe_set(x, y, 10, 5, seed=0)
    assert len(ps.labels) == 2 + 3 * 2 * 5
    assert torch.equal(ps.labels[ps.base_rows], y)
    both, label, image = (ps.probe_rows[p] for p in ("both", "label", "image"))
    assert torch.equal(ps.labels[both], ps.labels[label])  # same random labels
    assert torch.equal(ps.images[both], ps.images[image])  # same augmented images
    assert torch.equal(ps.labels[image], y[:, None].expand(2, 5))  # image-only keeps the query label
    assert torch.equal(ps.images[label], ps.images[ps.base_rows][:, None].expand(2, 5, 3, 16, 16))
    assert not (ps.labels[both] == y[:, None]).any()


def test_probe_set_is_deterministic_per_seed():
    x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8)
    a = build_probe_set(x, torch.tensor([2]), 10, 8, seed=11)
    b = build_probe_set(x, torch.tensor([2]), 10, 8, seed=11)
    c = build_probe_set(x, torch.tensor([2]), 10, 8, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_invalid_n_b_and_probe_are_refused():
    x = torch.zeros((1, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match="n_b"):
        build_probe_set(x, torch.tensor([0]), 10, 0, seed=0)
    with pytest.raises(ValueError, match="unknown probes"):
        build_probe_set(x, torch.tensor([0]), 10, 3, seed=0, probes=("rotate",))


@pytest.mark.parametrize(
    "side, kernels, sigma, elastic_sigma",
    [(160, {5, 7, 9}, (8.0, 10.0), 5.0), (32, {5, 7, 9}, (8.0, 10.0), 5.0), (8, {3}, (2.0, 2.5), 1.25)],
)
def test_blur_and_elastic_scale_down_for_small_images_only(monkeypatch, side, kernels, sigma, elastic_sigma):
    drawn = []
    real_blur = v2.GaussianBlur

    def recording_blur(kernel_size, sigma):
        drawn.append((kernel_size, tuple(sigma)))
        return real_blur(kernel_size, sigma)

    monkeypatch.setattr(v2, "GaussianBlur", recording_blur)
    families = augmentation_families(side, 1)
    torch.manual_seed(0)
    x = torch.rand(1, side, side)
    for _ in range(30):
        assert families["gaussian_blur"](x).shape == x.shape
    assert {k for k, _ in drawn} == kernels  # 160 px: the reference's 5-9 px, not 25-45 px
    assert {s for _, s in drawn} == {sigma}
    assert list(families["elastic"].sigma) == [elastic_sigma, elastic_sigma]
