"""Where the true-Fisher label stream stands at any example of a single-job fit, so that a shard can resume it.

A single-job fit (:func:`unpoison.influence.fit_factors`) seeds torch's CPU generator once, then draws, in
order: one number when the covariance stage's DataLoader iterator is made (PyTorch draws its workers' base
seed), one label per covariance example, one number for the lambda stage's iterator, one label per lambda
example. :class:`~unpoison.influence.ClassificationTask` draws labels on the CPU with ``torch.multinomial(p,
1)``, which consumes the generator by the NUMBER of rows × classes only, not by their values and not by how
the rows are split into batches (checked in tests/test_influence_shards.py). So the state before example
``start`` of a stage can be reached by replaying the same draws on dummy probabilities, and a shard that
installs it before its first label (``ClassificationTask.resume_state``) draws exactly the labels the single
job draws for the same examples. This holds as long as reading an example draws no torch random numbers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

REPLAY_ROWS = 8192  # rows of dummy probabilities per replayed draw (bounds memory; the split does not matter)


def num_outputs(model: nn.Module, train: Dataset) -> int:
    """The model's number of classes (the width of its output on the first training example)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    try:
        with torch.no_grad():
            return int(model.eval()(train[0][0].unsqueeze(0).to(device)).shape[-1])
    finally:
        model.train(was_training)


def _iterator_draw() -> None:
    torch.empty((), dtype=torch.int64).random_()  # what torch.utils.data's _BaseDataLoaderIter draws


def _skip_labels(examples: int, classes: int) -> None:
    ones = torch.ones(min(examples, REPLAY_ROWS), classes)
    for begin in range(0, examples, REPLAY_ROWS):
        torch.multinomial(ones[: min(REPLAY_ROWS, examples - begin)], num_samples=1)


def fisher_state(fisher_seed: int, stage: str, start: int, n_covariance: int, classes: int) -> torch.Tensor:
    """The CPU generator state a single-job fit seeded with ``fisher_seed`` has just before it draws the label
    of example ``start`` of ``stage`` (``covariance`` or ``lambda``; the covariance stage used
    ``n_covariance`` examples). The caller's generator state is left untouched."""
    if stage not in ("covariance", "lambda"):
        raise ValueError(f"stage {stage!r}: the Fisher labels are drawn in the covariance and lambda stages only")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(fisher_seed)
        _iterator_draw()
        if stage == "lambda":
            _skip_labels(n_covariance, classes)
            _iterator_draw()
        _skip_labels(start, classes)
        return torch.get_rng_state()
