"""Independent random streams per stage, all derived from the run's seed.

Every stage that draws randomness names its stream; the stream's seed is
``SeedSequence([seed, crc32(name)])``, so streams of different stages are statistically independent while
the same (seed, name) gives the same draws in every process and on every machine (crc32 is stable, unlike
Python's salted ``hash``). Before, every stage seeded its generator with the bare seed, so e.g. the
attack's victim class and the first random probe label came from the same numbers (the probe label equalled
the victim class for 38 % of seeds instead of 1/9).

Stream names in use: ``poison`` (attacks), ``queries``, ``probes``, ``train/init`` and ``train/order``
(model initialisation; shuffling and augmentation), ``factors`` (Fisher labels, subsample order),
``detect/oracle`` (which true poisons the oracle flags), ``unlearn/eu/init``, ``unlearn/eu/order``,
``unlearn/cf``, ``unlearn/ssd`` and ``unlearn/potion`` (importance batch composition), ``unlearn/scrub``,
``unlearn/badt/order``, ``unlearn/badt/teacher`` (the random teacher's initialisation), ``unlearn/ga``,
``unlearn/neggrad_plus`` (batch orders). Named variants of a method share its stream, ``clean/init`` and ``clean/order`` (the model trained on
the clean training set, rule ``train_clean``).
"""

from __future__ import annotations

import zlib

import numpy as np


def _sequence(seed: int, stage: str) -> np.random.SeedSequence:
    if seed < 0:
        raise ValueError(f"seed must be ≥ 0, got {seed}")
    return np.random.SeedSequence([int(seed), zlib.crc32(stage.encode("utf-8"))])


def stage_rng(seed: int, stage: str) -> np.random.Generator:
    """A numpy generator for ``stage``'s draws in the run with ``seed``.

    Args:
        seed: the run's seed (≥ 0).
        stage: the stream's name, e.g. ``"probes"``.
    """
    return np.random.default_rng(_sequence(seed, stage))


def stage_seed(seed: int, stage: str) -> int:
    """A 63-bit integer seed for ``stage`` (for ``torch.manual_seed`` or a ``torch.Generator``).

    Args:
        seed: the run's seed (≥ 0).
        stage: the stream's name, e.g. ``"train/init"``.
    """
    return int(_sequence(seed, stage).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
