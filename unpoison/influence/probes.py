"""The Δ-Influence probes: the query and n_b transformed copies of it (SPEC §2).

Each transform g_j pairs the test image with a random label (uniform over the classes other than the
query's label; distinct labels when there are at least n_b other classes) AND a random augmentation drawn
uniformly from seven families. Three probes share the same draws so the ablation is controlled:

  * ``both``  — augmented image + random label (Δ-Influence);
  * ``label`` — original image + random label (label-only ablation);
  * ``image`` — augmented image + original label (image-only ablation).

Augmentations act on [0, 1] images before the model's normalisation (the reference code applied them
after normalisation: a bug, fixed here). The reference's settings are for 32×32 CIFAR images: blur kernels
of 5-9 px with sigma 8-10, elastic sigma 5. Images smaller than 32 px get them scaled DOWN by side/32 so
they stay valid (8×8 digits: 3×3 blur, sigma 2-2.5, elastic sigma 1.25); larger images (Imagenette at
160 px) keep the reference's values, as the reference did, rather than 25-45 px kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import v2

from unpoison.data import to_float
from unpoison.seeding import stage_rng

PROBES = ("both", "label", "image")  # transformed probes; "base" (the query alone) is always scored

Augment = Callable[[torch.Tensor], torch.Tensor]


def _odd(v: float) -> int:
    k = max(3, round(v))
    return k if k % 2 == 1 else max(k - 1, 3)


def blur_kernel_sizes(image_size: int) -> list[int]:
    """Odd Gaussian-blur kernel sizes drawn from: the reference's 5-9 px, scaled down below 32 px (min 3)."""
    s = min(1.0, image_size / 32.0)
    return list(range(_odd(5 * s), _odd(9 * s) + 1, 2))


def augmentation_families(image_size: int, channels: int) -> dict[str, Augment]:
    """The seven augmentation families at the reference's settings, scaled down for images under 32 px.

    ``color_switch`` (swap R and G) needs three channels and is left out for grayscale images.
    """
    s = min(1.0, image_size / 32.0)  # scale the reference's 32-px settings down, never up
    kernels = blur_kernel_sizes(image_size)
    families: dict[str, Augment] = {
        "hflip": v2.RandomHorizontalFlip(p=1.0),
        "affine": v2.RandomAffine(degrees=180, scale=(1.0, 2.0), shear=10),
        "color_jitter": v2.ColorJitter(brightness=(0.9, 1.1), contrast=(0.9, 1.1), saturation=(0.6, 1.4), hue=(-0.1, 0.1)),
        "elastic": v2.ElasticTransform(alpha=150.0, sigma=5.0 * s),
        "gaussian_blur": lambda x: v2.GaussianBlur(
            kernel_size=kernels[int(torch.randint(len(kernels), (1,)))], sigma=(8.0 * s, 10.0 * s)
        )(x),
        "invert": v2.RandomInvert(p=1.0),
    }
    if channels == 3:
        families["color_switch"] = lambda x: x[..., [1, 0, 2], :, :]
    return families


@dataclass
class ProbeSet:
    """All query rows of one scoring pass and where each probe's rows are.

    Attributes:
        images: float M×C×H×W in [0, 1]; labels: int64 M.
        base_rows: (q,) row of each test point's untransformed query (label = the model's prediction).
        probe_rows: probe → (q, n_b) rows of its transformed queries.
        random_labels: (q, n_b) labels drawn for ``both``/``label``; augmentations: (q, n_b) family names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    base_rows: torch.Tensor
    probe_rows: dict[str, torch.Tensor]
    random_labels: torch.Tensor
    augmentations: list[list[str]]


def draw_random_labels(query_label: int, num_classes: int, n_b: int, rng: np.random.Generator) -> np.ndarray:
    """n_b labels uniform over classes ≠ ``query_label`` (distinct when enough classes exist)."""
    others = np.array([c for c in range(num_classes) if c != query_label])
    return rng.choice(others, size=n_b, replace=len(others) < n_b)


def build_probe_set(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    n_b: int,
    seed: int,
    probes: tuple[str, ...] = PROBES,
    stream: str = "probes",
) -> ProbeSet:
    """Build the base queries and each probe's n_b transformed copies for every test point.

    Args:
        x: uint8 q×C×H×W test images (the affected points); y: their query labels (the model's predictions).
        num_classes: number of classes; n_b: transforms per point; seed: the run's seed (all draws come
            from its ``probes`` stream).
        probes: which of :data:`PROBES` to build.
        stream: the seed's random stream (``probes``; the control queries draw from ``probes/controls``).
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probes {unknown}; choose from {PROBES}")
    if n_b < 1:
        raise ValueError(f"n_b must be ≥ 1, got {n_b}")
    q, c, h, w = x.shape
    families = augmentation_families(min(h, w), c)
    names = sorted(families)
    rng = stage_rng(seed, stream)
    base = to_float(x)
    labels_rand = np.zeros((q, n_b), dtype=np.int64)
    aug_names: list[list[str]] = []
    augmented = torch.empty((q, n_b, c, h, w))
    for i in range(q):
        labels_rand[i] = draw_random_labels(int(y[i]), num_classes, n_b, rng)
        picks = rng.choice(len(names), size=n_b)
        seeds = rng.integers(0, 2**31 - 1, size=n_b)
        aug_names.append([names[k] for k in picks])
        for j in range(n_b):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seeds[j]))
                augmented[i, j] = families[names[picks[j]]](base[i]).clamp(0.0, 1.0)
    rand_t = torch.from_numpy(labels_rand)
    images, labels, probe_rows = _probe_rows(base, y.to(torch.int64), augmented, rand_t, probes)
    return ProbeSet(
        images=images,
        labels=labels,
        base_rows=torch.arange(q),
        probe_rows=probe_rows,
        random_labels=rand_t,
        augmentations=aug_names,
    )


def _probe_rows(
    base: torch.Tensor, y: torch.Tensor, augmented: torch.Tensor, rand: torch.Tensor, probes: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """All query rows (the q base queries first, then each probe's q × n_b rows) and where each probe's are."""
    q, n_b, c, h, w = augmented.shape
    rows_img, rows_lab = [base], [y]
    probe_rows: dict[str, torch.Tensor] = {}
    start = q
    for p in probes:
        if p == "both":
            imgs, labs = augmented.reshape(q * n_b, c, h, w), rand.reshape(-1)
        elif p == "label":
            imgs, labs = base[:, None].expand(q, n_b, c, h, w).reshape(q * n_b, c, h, w), rand.reshape(-1)
        else:  # image
            imgs, labs = augmented.reshape(q * n_b, c, h, w), y[:, None].expand(q, n_b).reshape(-1)
        rows_img.append(imgs)
        rows_lab.append(labs)
        probe_rows[p] = torch.arange(start, start + q * n_b).reshape(q, n_b)
        start += q * n_b
    return torch.cat(rows_img).contiguous(), torch.cat(rows_lab), probe_rows
