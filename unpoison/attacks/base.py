"""The attack interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from unpoison.data import DatasetInfo, ImageData
from unpoison.params import require
from unpoison.registry import Registry
from unpoison.seeding import stage_rng
from unpoison.training import TrainRecipe


@dataclass
class PoisonResult:
    """Poisoned training set (same length and order as the clean one) and the attack's ground truth."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    truth: dict[str, Any]
    # Arrays a user may want to look at (e.g. a smooth trigger), saved as .npy and .png in RUN/artifacts/; never
    # read by detectors or unlearners.
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class CleanModel:
    """A model trained on the CLEAN training set (rule ``train_clean``, one per dataset × seed), handed to
    attacks that declare ``needs_clean_model`` (a trigger optimised on it, gradients aligned on it)."""

    model: nn.Module  # in eval mode, on ``device``
    spec: dict[str, Any]  # architecture spec (see unpoison.models.save_checkpoint): rebuild with build_model
    recipe: TrainRecipe  # the dataset's training recipe (the victim's; augmentation settings included)
    device: torch.device


class Attack(ABC):
    """One poisoning attack. ``params`` come from the config; randomness only from ``seed``."""

    name: str = ""
    needs_clean_model: ClassVar[bool] = False  # True: poison() receives a CleanModel (rule train_clean)
    display_name: ClassVar[str] = ""  # how tables and figures print it
    citation: ClassVar[str] = ""  # the paper it implements
    # Report tables of its own besides PSR (``gus``: the Gaussian Unlearning Score table and figure), computed from
    # the metrics its ``extra_metrics`` adds to every model's row.
    report_tables: ClassVar[tuple[str, ...]] = ()
    # False for an attack that affects no test point by design (Gaussian poisoning): no query exists, PSR is
    # undefined, and the attack is measured by ``extra_metrics`` instead (see unpoison.status).
    affects_test: ClassVar[bool] = True
    # True when ``extra_metrics`` needs the poisoned training images (the evaluator then loads them).
    metrics_read_poisoned: ClassVar[bool] = False
    # At most this many affected test points exist (Witches' Brew: its one target image); queries.count is
    # clipped to it, and a detector asking for more points (n_points) is recorded as not applicable.
    max_queries: ClassVar[int | None] = None

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def poison(self, data: ImageData, seed: int, clean: CleanModel | None = None) -> PoisonResult:
        """Poison ``data``'s training set; victim/target classes and poison indices are drawn from ``seed``
        through :meth:`rng`. ``clean`` is given exactly when the class sets ``needs_clean_model``."""

    def rng(self, seed: int) -> np.random.Generator:
        """The attack's own random stream (``poison``) of the run with ``seed``, independent of other stages'."""
        return stage_rng(seed, "poison")

    @abstractmethod
    def affected_test(self, data: ImageData, truth: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Test inputs the attack targets: (images uint8, their true labels, the attacker's target labels)."""

    def extra_metrics(
        self,
        model: nn.Module,
        data: ImageData,
        x_poisoned: torch.Tensor | None,
        truth: dict[str, Any],
        device: torch.device,
        seed: int,
        batch_size: int = 512,
    ) -> dict[str, Any]:
        """Attack-specific metrics of a model (evaluation only), merged into its metrics row; none by default.
        ``x_poisoned`` is the poisoned training set's images when the class sets ``metrics_read_poisoned``."""
        return {}

    def check(self, info: DatasetInfo | None, n_queries: int) -> None:
        """Validate parameters against the dataset before any job runs (raise ValueError with the fix).

        Args:
            info: the dataset's image shape and per-class counts (fields ``None`` when not known yet).
            n_queries: how many affected test points the defender will be handed (``queries.count``).
        """


ATTACKS: Registry[Attack] = Registry("attack")
register_attack = ATTACKS.register  # class decorator: @register_attack("name")
get_attack = ATTACKS.create  # get_attack(name, params) -> Attack


def check_victim_counts(count: int, info: DatasetInfo, n_queries: int) -> None:
    """Checks shared by attacks that poison ``count`` images of a random victim class and trigger its test
    images: ``count`` fits the smallest class's training images, ``n_queries`` its test images."""
    if info.train_counts is not None:
        smallest = int(np.min(info.train_counts))
        require(
            count <= smallest,
            "count",
            count,
            f"≤ {smallest}, the smallest class's training images (any class can be the victim)",
        )
    if info.test_counts is not None:
        fewest = int(np.min(info.test_counts))
        if n_queries > fewest:
            raise ValueError(
                f"queries.count: {n_queries} affected test points requested, but the smallest class has only "
                f"{fewest} test images (the affected points are triggered victim-class test images); use ≤ {fewest}"
            )


def draw_victim_target(num_classes: int, rng: np.random.Generator) -> tuple[int, int]:
    """Two distinct classes: the victim (whose images are poisoned) and the attacker's target."""
    victim, target = rng.choice(num_classes, size=2, replace=False)
    return int(victim), int(target)
