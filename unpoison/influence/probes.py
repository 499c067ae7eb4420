"""The Δ-Influence probes: the query and n_b transformed copies of it (Li et al. 2024).

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
        "color_jitter": v2.ColorJitter(
            brightness=(0.9, 1.1), contrast=(0.9, 1.1), saturation=(0.6, 1.4), hue=(-0.1, 0.1)
        ),
        "elastic": v2.ElasticTransform(alpha=150.0, sigma=5.0 * s),
        "gaussian_blur": lambda x: v2.GaussianBlur(
            kernel_size=kernels[int(torch.randint(len(kernels), (1,)))], sigma=(8.0 * s, 10.0 * s)
        )(x),
        "invert": v2.RandomInvert(p=1.0),
    }
    if channels == 3:
        families["color_switch"] = lambda x: x[..., [1, 0, 2], :, :]
    return families


def select_families(image_size: int, channels: int, families: tuple[str, ...] | None = None) -> dict[str, Augment]:
    """The families of :func:`augmentation_families` named in ``families`` (None = all); raise on unknown names."""
    available = augmentation_families(image_size, channels)
    unknown = sorted(set(families or ()) - set(available))
    if unknown or (families is not None and not families):
        raise ValueError(
            f"augmentation families {unknown or '[]'} not available for {channels}-channel images; "
            f"choose one or more of {sorted(available)}"
        )
    return {k: available[k] for k in (families if families is not None else available)}


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

    def columns(self, probe: str) -> torch.Tensor:
        """(q, 1 + n_b) rows of each test point's query and its ``probe`` transforms; ``base``: (q, 1)."""
        base = self.base_rows[:, None]
        return base if probe == "base" else torch.cat([base, self.probe_rows[probe]], dim=1)


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
    families: tuple[str, ...] | None = None,
) -> ProbeSet:
    """Build the base queries and each probe's n_b transformed copies for every test point.

    Args:
        x: q×C×H×W test images (the affected points), uint8 or float in [0, 1]; y: their query labels (the
            model's predictions).
        num_classes: number of classes; n_b: transforms per point; seed: the run's seed (all draws come
            from its ``probes`` stream).
        probes: which of :data:`PROBES` to build.
        stream: the seed's random stream (``probes``; the control queries draw from ``probes/controls``).
        families: the augmentation families to draw from (None = all; see :func:`select_families`).
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise ValueError(f"unknown probes {unknown}; choose from {PROBES}")
    if n_b < 1:
        raise ValueError(f"n_b must be ≥ 1, got {n_b}")
    base = to_float(x) if x.dtype == torch.uint8 else x.float()
    labels_rand, augmented, aug_names = draw_transforms(base, y, num_classes, n_b, stage_rng(seed, stream), families)
    q, c, h, w = base.shape
    rows_img, rows_lab = [base], [y.to(torch.int64)]
    probe_rows: dict[str, torch.Tensor] = {}
    start = q
    for p in probes:
        if p == "both":
            imgs, labs = augmented.reshape(q * n_b, c, h, w), labels_rand.reshape(-1)
        elif p == "label":
            imgs, labs = base[:, None].expand(q, n_b, c, h, w).reshape(q * n_b, c, h, w), labels_rand.reshape(-1)
        else:  # image
            imgs, labs = augmented.reshape(q * n_b, c, h, w), y.to(torch.int64)[:, None].expand(q, n_b).reshape(-1)
        rows_img.append(imgs)
        rows_lab.append(labs)
        probe_rows[p] = torch.arange(start, start + q * n_b).reshape(q, n_b)
        start += q * n_b
    return ProbeSet(
        torch.cat(rows_img).contiguous(), torch.cat(rows_lab), torch.arange(q), probe_rows, labels_rand, aug_names
    )


def draw_transforms(
    base: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    n_b: int,
    rng: np.random.Generator,
    families: tuple[str, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    """For each test point (float q×C×H×W in [0, 1]), n_b random labels and n_b augmented images, each image from a
    family drawn uniformly, with its own torch seed drawn from ``rng``: (labels (q, n_b), images (q, n_b, C, H, W),
    family names (q, n_b))."""
    q, c, h, w = base.shape
    families_used = select_families(min(h, w), c, families)
    names = sorted(families_used)
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
                augmented[i, j] = families_used[names[picks[j]]](base[i]).clamp(0.0, 1.0)
    return torch.from_numpy(labels_rand), augmented, aug_names
