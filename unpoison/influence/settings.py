"""The EK-FAC knobs of the config (``influence.factors`` and ``influence.scores``) and their kronfluence arguments."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from unpoison.device import AmpName, autocast_dtype
from unpoison.params import require
from unpoison.registry import ConfigSettings

if TYPE_CHECKING:  # kronfluence is imported where the arguments are built, not when the config is read
    from kronfluence.arguments import FactorArguments, ScoreArguments

Cap = int | None | Literal["auto"]  # a stage's example cap: a count, null = every example, auto = from the cost


def _check_cap(name: str, value: Cap) -> None:
    ok = value is None or value == "auto" or (isinstance(value, int) and value >= 1)
    require(ok, name, value, "null (all training points), auto (chosen from the estimated cost) or ≥ 1")


@dataclass
class FactorSettings(ConfigSettings):
    """EK-FAC fitting knobs (kronfluence ``FactorArguments``), CPU-safe defaults (config: influence.factors).

    ``covariance_max_examples`` / ``lambda_max_examples`` subsample a stage to a uniform random subset of that
    many training points drawn by the seed; ``null`` uses every point; ``auto`` lets
    :func:`unpoison.influence.cost.auto_caps` pick a cap when the stage's estimated cost is large.
    """

    config_key: ClassVar[str] = "influence.factors"
    execution_fields: ClassVar[tuple[str, ...]] = ("batch_size", "num_workers", "pin_memory")

    batch_size: int = 128  # per-device batch for the covariance and lambda stages (sums: no effect on results)
    amp: AmpName = "none"  # none | bf16 | fp16 autocast (GPU)
    covariance_max_examples: Cap = None
    lambda_max_examples: Cap = None
    num_workers: int = 0  # DataLoader workers (data are in-memory tensors: 0 is usually fastest)
    pin_memory: bool = False

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "batch_size", self.batch_size, "≥ 1")
        _check_cap("covariance_max_examples", self.covariance_max_examples)
        _check_cap("lambda_max_examples", self.lambda_max_examples)
        require(self.num_workers >= 0, "num_workers", self.num_workers, "≥ 0")

    @property
    def has_auto(self) -> bool:
        """Whether a cap is still ``auto`` (resolve it with :func:`unpoison.influence.cost.resolve_caps`)."""
        return "auto" in (self.covariance_max_examples, self.lambda_max_examples)

    def with_caps(self, covariance: int | None, lambda_: int | None) -> FactorSettings:
        """A copy with the two caps replaced (how ``auto`` is resolved)."""
        return dataclasses.replace(self, covariance_max_examples=covariance, lambda_max_examples=lambda_)

    def arguments(self, shards: int = 1) -> FactorArguments:
        """kronfluence's arguments; ``shards`` > 1 splits the covariance and lambda passes into that many data
        partitions (see :mod:`unpoison.influence.shards`)."""
        from kronfluence.arguments import FactorArguments

        if self.has_auto:
            raise ValueError("resolve the 'auto' caps (unpoison.influence.cost.resolve_caps) before fitting")
        return FactorArguments(
            strategy="ekfac",
            amp_dtype=autocast_dtype(self.amp),
            covariance_max_examples=self.covariance_max_examples,
            lambda_max_examples=self.lambda_max_examples,
            covariance_data_partitions=shards,
            lambda_data_partitions=shards,
        )


@dataclass
class ScoreSettings(ConfigSettings):
    """Pairwise-scoring knobs (kronfluence ``ScoreArguments``), CPU-safe defaults (config: influence.scores)."""

    config_key: ClassVar[str] = "influence.scores"
    execution_fields: ClassVar[tuple[str, ...]] = ("train_batch_size", "query_batch_size", "num_workers", "pin_memory")

    train_batch_size: int = 128  # per-device training batch while scoring
    query_batch_size: int = 64  # queries whose gradients are computed together; ALL are scored in one pass
    amp: AmpName = "none"  # none | bf16 | fp16 autocast (GPU)
    query_gradient_low_rank: int | None = None  # low-rank query gradients (saves memory), None = exact
    damping_factor: float | None = 1e-8  # kronfluence's default; None = 0.1 × mean eigenvalue (heuristic)
    num_workers: int = 0
    pin_memory: bool = False

    def __post_init__(self) -> None:
        require(self.train_batch_size >= 1, "train_batch_size", self.train_batch_size, "≥ 1")
        require(self.query_batch_size >= 1, "query_batch_size", self.query_batch_size, "≥ 1")
        rank = self.query_gradient_low_rank
        require(rank is None or rank >= 1, "query_gradient_low_rank", rank, "null (exact) or ≥ 1")
        damping = self.damping_factor
        require(damping is None or damping >= 0, "damping_factor", damping, "null (heuristic) or ≥ 0")
        require(self.num_workers >= 0, "num_workers", self.num_workers, "≥ 0")

    def arguments(self, n_queries: int, shards: int = 1) -> ScoreArguments:
        """kronfluence's arguments: all ``n_queries`` query gradients accumulated so that ONE pass over the
        training set scores them all; ``shards`` > 1 splits that pass into data partitions."""
        from kronfluence.arguments import ScoreArguments

        steps = max(1, math.ceil(n_queries / self.query_batch_size))
        return ScoreArguments(
            damping_factor=self.damping_factor,
            amp_dtype=autocast_dtype(self.amp),
            query_gradient_low_rank=self.query_gradient_low_rank,
            query_gradient_accumulation_steps=steps,
            data_partitions=shards,
        )
