"""What the EK-FAC stages will cost, estimated from the model's tracked layer shapes before any of them runs,
and the ``auto`` caps chosen from that estimate.

Per image and tracked layer (kronfluence tracks Linear and Conv2d: ``T`` output positions, ``din`` inputs
per position (C_in·k_h·k_w, +1 for a bias), ``dout`` outputs), in multiply-adds:
  * a forward pass costs T·din·dout (a training epoch: three passes' worth per image);
  * the covariance stage adds T·(din² + dout²) for the activation and gradient covariances;
  * the lambda stage adds T·din·dout (the per-sample gradient) and dout²·din + dout·din² (rotating it into the
    eigenbasis), the term that makes a standard ResNet-18 on 32×32 images cost ~50 GFLOP per image;
  * each eigendecomposition costs O(din³ + dout³), once;
  * scoring adds T·din·dout + q·din·dout per training image for q queries.
Every stage but the eigendecomposition also runs a forward and a backward pass per image.

The ``auto`` caps depend on these FLOP counts only (never on a timing), so the same model, data and settings
give the same caps, hence the same subsample and the same results, on every machine and in every shard. The
time estimate printed beside them comes from a quick measurement (one forward/backward pass of a few images,
one matmul, one small ``eigh``) and is only a guide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from kronfluence.module.tracked_module import TrackedModule
from torch import nn
from torch.utils.data import Dataset

from unpoison.influence.progress import Log, format_seconds
from unpoison.influence.settings import FactorSettings

# auto caps: a capped stage costs at most this many training epochs' worth of FLOPs, and never uses fewer
# examples than the floor (or the whole set when it is smaller). Chosen on cifar10-cpu seed 100 (BENCHMARKS.md
# "Detection cost against training"): 1 + 1 epochs keep TPR/precision there and bring detection to ~0.13x training
LAMBDA_BUDGET_EPOCHS, LAMBDA_FLOOR = 1.0, 250
COVARIANCE_BUDGET_EPOCHS, COVARIANCE_FLOOR = 1.0, 1000


@dataclass
class LayerShape:
    """One tracked layer: ``positions`` T per image, ``d_in`` and ``d_out`` as in the module docstring."""

    name: str
    positions: int
    d_in: int
    d_out: int


def layer_shapes(model: nn.Module, example: torch.Tensor) -> list[LayerShape]:
    """The tracked layers (what kronfluence wraps: Linear, Conv2d) and their shapes on one input ``example``."""
    shapes: list[LayerShape] = []
    handles = []
    kinds = tuple(TrackedModule.SUPPORTED_MODULES)

    def hook(name: str):
        def record(module: nn.Module, args, output: torch.Tensor) -> None:
            bias = int(getattr(module, "bias", None) is not None)
            if isinstance(module, nn.Conv2d):
                d_in = module.in_channels * math.prod(module.kernel_size) + bias
                positions = output.shape[-1] * output.shape[-2]
            else:
                d_in = module.in_features + bias
                positions = output[0].numel() // module.out_features
            shapes.append(LayerShape(name, positions, d_in, output.shape[1] if output.dim() == 4 else output.shape[-1]))

        return record

    for name, module in model.named_modules():
        if isinstance(module, kinds):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            model.eval()(example[:1].to(device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


@dataclass
class CostEstimate:
    """FLOPs (multiply-add = 2) of each stage and, when measured, its estimated seconds.

    Attributes:
        n_train, n_queries: data sizes; layers: the tracked layers.
        per_image: stage → FLOPs per image (``epoch``: one training step's forward + backward;
            ``eigendecomposition``: the once-only total).
        rates: measured ``pass`` (seconds per image of forward + backward), ``matmul`` (seconds per FLOP of
            a batched matmul) and ``eigh`` (seconds per n³); empty when not measured.
    """

    n_train: int
    n_queries: int
    layers: list[LayerShape]
    per_image: dict[str, float]
    rates: dict[str, float]

    def flops(self, stage: str, examples: int | None = None) -> float:
        """FLOPs of ``stage`` over ``examples`` images (default: the whole training set)."""
        if stage == "eigendecomposition":
            return self.per_image[stage]
        return self.per_image[stage] * (self.n_train if examples is None else examples)

    def seconds(self, stage: str, examples: int | None = None) -> float | None:
        """Estimated wall seconds of ``stage`` over ``examples`` images, or None when not measured."""
        if not self.rates:
            return None
        if stage == "eigendecomposition":
            return self.rates["eigh"] * sum(s.d_in**3 + s.d_out**3 for s in self.layers)
        n = self.n_train if examples is None else examples
        extra = self.per_image[stage] - self.per_image["epoch"]
        return n * (self.rates["pass"] + extra * self.rates["matmul"])

    def to_json(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_queries": self.n_queries,
            "per_image_flops": self.per_image,
            "rates": self.rates,
            "layers": [asdict(s) for s in self.layers],
        }


def per_image_flops(layers: list[LayerShape], n_queries: int) -> dict[str, float]:
    """Stage → FLOPs per image (see the module docstring); ``eigendecomposition`` is a once-only total."""
    fwd = sum(2.0 * s.positions * s.d_in * s.d_out for s in layers)
    pass_ = 3.0 * fwd  # forward + backward
    return {
        "epoch": pass_,
        "covariance": pass_ + sum(2.0 * s.positions * (s.d_in**2 + s.d_out**2) for s in layers),
        "eigendecomposition": sum(9.0 * (s.d_in**3 + s.d_out**3) for s in layers),
        "lambda": pass_
        + sum(2.0 * (s.positions * s.d_in * s.d_out + s.d_out**2 * s.d_in + s.d_out * s.d_in**2) for s in layers),
        "scores": pass_ + sum(2.0 * (s.positions + n_queries) * s.d_in * s.d_out for s in layers),
    }


def example_batch(train: Dataset, size: int = 32) -> torch.Tensor:
    """The estimate's probe batch: the first training input, ``size`` times (the data are read once)."""
    first = train[0][0]
    return first.unsqueeze(0).expand(size, *first.shape).contiguous()


def _timed(fn, device: torch.device, repeats: int = 2) -> float:
    """Best-of-``repeats`` wall seconds of ``fn()`` after one warm-up call."""
    import time

    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def measure_rates(
    model: nn.Module, batch: torch.Tensor, layers: list[LayerShape], device: torch.device
) -> dict[str, float]:
    """Quick throughputs on ``device``: forward + backward per image, a matmul shaped like the largest layer's
    rotation, and a 256×256 ``eigh`` (float64). A second or two on a CPU."""
    import copy

    net = copy.deepcopy(model).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(True)
    x = batch.to(device)

    def pass_() -> None:
        net.zero_grad(set_to_none=True)
        net(x).float().sum().backward()

    big = max(layers, key=lambda s: s.d_in * s.d_out)
    d_in, d_out = min(big.d_in, 1024), min(big.d_out, 1024)
    gen = torch.Generator().manual_seed(0)  # the global RNG is left alone
    g = torch.randn(2, d_out, d_in, generator=gen).to(device)
    q = torch.randn(d_in, d_in, generator=gen).to(device)
    a = torch.randn(256, 256, dtype=torch.float64, generator=gen).to(device)
    a = a @ a.T
    return {
        "pass": _timed(pass_, device) / len(x),
        "matmul": _timed(lambda: g @ q, device) / (2.0 * 2 * d_out * d_in * d_in),
        "eigh": _timed(lambda: torch.linalg.eigh(a), device) / (256**3),
    }


def estimate_cost(
    model: nn.Module, train: Dataset, n_queries: int = 0, device: torch.device | None = None, measure: bool = True
) -> CostEstimate:
    """The cost of each EK-FAC stage on ``train`` (FLOPs; seconds when ``measure``) for ``n_queries`` queries."""
    batch = example_batch(train)
    layers = layer_shapes(model, batch)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no layer EK-FAC can track (nn.Linear, nn.Conv2d)")
    rates = measure_rates(model, batch, layers, device or torch.device("cpu")) if measure else {}
    return CostEstimate(len(train), n_queries, layers, per_image_flops(layers, n_queries), rates)


def _two_digits(n: int) -> int:
    """``n`` rounded down to two significant digits (2,345 → 2,300), for caps that read well in a log."""
    scale = 10 ** max(len(str(n)) - 2, 0)
    return n // scale * scale


def auto_cap(estimate: CostEstimate, stage: str, budget_epochs: float, floor: int) -> int | None:
    """The cap ``auto`` means for ``stage``: None (all examples) when the stage costs at most ``budget_epochs``
    training epochs' worth of FLOPs, else the examples that fit that budget (two significant digits), at
    least ``floor``."""
    n = estimate.n_train
    ratio = estimate.per_image[stage] / estimate.per_image["epoch"]  # the stage over all n, in epochs
    if ratio <= budget_epochs:
        return None
    cap = max(min(n, floor), _two_digits(int(n * budget_epochs / ratio)))
    return None if cap >= n else cap


def auto_caps(estimate: CostEstimate, settings: FactorSettings) -> FactorSettings:
    """``settings`` with each ``auto`` cap replaced by :func:`auto_cap`'s choice (explicit values are kept)."""
    cov, lam = settings.covariance_max_examples, settings.lambda_max_examples
    if cov == "auto":
        cov = auto_cap(estimate, "covariance", COVARIANCE_BUDGET_EPOCHS, COVARIANCE_FLOOR)
    if lam == "auto":
        lam = auto_cap(estimate, "lambda", LAMBDA_BUDGET_EPOCHS, LAMBDA_FLOOR)
    return settings.with_caps(cov, lam)  # type: ignore[arg-type]


def describe_cost(estimate: CostEstimate, requested: FactorSettings, resolved: FactorSettings) -> list[str]:
    """Log lines: each stage's examples, FLOPs, training epochs' worth and estimated time, before the fit."""
    n_all, epoch = estimate.n_train, estimate.flops("epoch")
    widest = max(max(s.d_in, s.d_out) for s in estimate.layers)
    head = (
        f"EK-FAC cost estimate: {n_all:,} training images, {len(estimate.layers)} tracked layers (widest {widest:,}), "
        f"one training epoch ≈ {_flops(epoch)}{_time(estimate.seconds('epoch'))}"
    )
    lines = [head]
    for stage, field in (("covariance", "covariance_max_examples"), ("lambda", "lambda_max_examples")):
        cap = getattr(resolved, field)
        n = n_all if cap is None else min(cap, n_all)
        auto = " (auto cap)" if getattr(requested, field) == "auto" and cap is not None else ""
        full = (
            ""
            if n == n_all
            else f"; all {n_all:,}: {estimate.flops(stage) / epoch:.1f} epochs{_time(estimate.seconds(stage))}"
        )
        lines.append(
            f"  {stage}: {n:,} of {n_all:,} examples{auto}, {_flops(estimate.flops(stage, n))} = "
            f"{estimate.flops(stage, n) / epoch:.1f} epochs' worth{_time(estimate.seconds(stage, n))}{full}"
        )
    lines.append(
        f"  eigendecomposition: {2 * len(estimate.layers)} matrices up to {widest:,}×{widest:,}"
        f"{_time(estimate.seconds('eigendecomposition'))}"
    )
    per_query = n_all * sum(2.0 * s.d_in * s.d_out for s in estimate.layers)
    base = estimate.flops("scores") - estimate.n_queries * per_query
    lines.append(
        f"  scores: one pass over {n_all:,} examples, {_flops(base)} = {base / epoch:.1f} epochs' worth "
        f"+ {per_query / epoch:.3f} per query"
    )
    return lines


def _flops(flops: float) -> str:
    return f"{flops / 1e12:,.1f} TFLOP" if flops >= 1e11 else f"{flops / 1e9:,.2f} GFLOP"


def _time(seconds: float | None) -> str:
    return "" if seconds is None else f", ~{format_seconds(seconds)}"


def resolve_caps(
    model: nn.Module,
    train: Dataset,
    settings: FactorSettings,
    log: Log,
    device: torch.device | None = None,
    measure: bool = True,
) -> tuple[FactorSettings, dict[str, Any]]:
    """Estimate the fit's cost, resolve ``auto`` caps from it (FLOPs only) and log the estimate.

    Returns:
        (the settings with no ``auto`` left, the estimate as JSON for the fit's report).
    """
    estimate = estimate_cost(model, train, 0, device, measure)
    resolved = auto_caps(estimate, settings)
    for line in describe_cost(estimate, settings, resolved):
        log(line)
    return resolved, estimate.to_json() | {
        "caps": {"covariance": resolved.covariance_max_examples, "lambda": resolved.lambda_max_examples}
    }
