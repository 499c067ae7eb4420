"""Model registry. Every model takes images in [0, 1] and normalises them itself (first layer).

Keeping normalisation inside the model means augmentations, triggers and influence probes all act on
[0, 1] images, as Δ-Influence's transforms are defined (the reference code transformed normalised tensors).
Only Conv2d and Linear layers carry parameters that kronfluence tracks; BatchNorm is fine in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from unpoison.params import bind_params, require

ModelFactory = Callable[..., nn.Module]
Stats = list[float] | None  # per-channel normalisation statistics (None = the dataset family's defaults)
MODEL_ARGS = ("num_classes", "in_channels")  # supplied by the pipeline from the data, never by the config
MODELS: dict[str, ModelFactory] = {}

# Per-channel statistics used by the models' normalisation layer.
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator adding ``factory(num_classes, in_channels, **options) -> nn.Module`` to :data:`MODELS`."""

    def deco(fn: ModelFactory) -> ModelFactory:
        MODELS[name] = fn
        return fn

    return deco


class Normalize(nn.Module):
    """(x - mean) / std per channel, with the statistics as buffers (saved in the state dict)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``normalize`` → ``body`` (features) → ``head`` (Linear) × ``logit_scale``.

    ``features(x)`` gives the penultimate activations (for activation-based detectors).
    """

    def __init__(self, normalize: Normalize, body: nn.Module, head: nn.Linear, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.normalize = normalize
        self.body = body
        self.head = head
        self.logit_scale = logit_scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.features(x))
        return out * self.logit_scale if self.logit_scale != 1.0 else out


def _stats(in_channels: int, mean: Stats, std: Stats, default: tuple):
    if mean is not None and std is not None:
        return list(mean), list(std)
    if in_channels == 3:
        return list(default[0]), list(default[1])
    return [0.5] * in_channels, [0.25] * in_channels


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


@register_model("digits_cnn")
def digits_cnn(
    num_classes: int, in_channels: int = 1, width: int = 32, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """A small CNN for 8×8 images: conv(w)→conv(2w)→pool→conv(4w)→pool→GAP→Linear (~0.1M params at w=32).

    Args:
        width: channels of the first convolution (then 2w and 4w). Range: ≥ 1.
        mean: per-channel mean of the normalisation layer; null = CIFAR statistics for RGB images, 0.5 for
            grayscale. Range: null or one number per channel.
        std: per-channel standard deviation of the normalisation layer; null = CIFAR statistics for RGB images,
            0.25 for grayscale. Range: null or one positive number per channel.
    """
    mean, std = _stats(in_channels, mean, std, (CIFAR_MEAN, CIFAR_STD))
    body = nn.Sequential(
        _conv_bn(in_channels, width),
        _conv_bn(width, 2 * width),
        nn.MaxPool2d(2),
        _conv_bn(2 * width, 4 * width),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return Classifier(Normalize(mean, std), body, nn.Linear(4 * width, num_classes))


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(_conv_bn(width, width), _conv_bn(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


@register_model("resnet9")
def resnet9(
    num_classes: int,
    in_channels: int = 3,
    width: int = 64,
    logit_scale: float = 0.125,
    mean: Stats = None,
    std: Stats = None,
) -> nn.Module:
    """The compact residual network of the DAWNBench/airbench lineage (Page 2018), width ``w``:
    prep conv(w) → conv(2w)+pool+res → conv(4w)+pool → conv(8w)+pool+res → GAP → Linear.

    At w=64 this is the 6.5M-parameter ResNet-9; small widths make CPU-scale CIFAR runs feasible. Logits are
    multiplied by ``logit_scale`` = 0.125 as in Page's design: the max-pooled features give large logits, with
    which SGD at lr 0.1 stalls.

    Args:
        width: channels of the prep convolution (then 2w, 4w, 8w). Range: ≥ 1.
        logit_scale: factor on the logits (Page's 0.125). Range: a finite number.
        mean: per-channel mean of the normalisation layer; null = CIFAR statistics for RGB images, 0.5 for
            grayscale. Range: null or one number per channel.
        std: per-channel standard deviation of the normalisation layer; null = CIFAR statistics for RGB images,
            0.25 for grayscale. Range: null or one positive number per channel.
    """
    mean, std = _stats(in_channels, mean, std, (CIFAR_MEAN, CIFAR_STD))
    w = width
    body = nn.Sequential(
        _conv_bn(in_channels, w),
        _conv_bn(w, 2 * w),
        nn.MaxPool2d(2),
        _Residual(2 * w),
        _conv_bn(2 * w, 4 * w),
        nn.MaxPool2d(2),
        _conv_bn(4 * w, 8 * w),
        nn.MaxPool2d(2),
        _Residual(8 * w),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
    )
    return Classifier(Normalize(mean, std), body, nn.Linear(8 * w, num_classes), logit_scale)


def _torchvision_resnet18_body(in_channels: int, width: int, cifar_stem: bool) -> nn.Module:
    """torchvision's ResNet-18 with every stage's width scaled by ``width``/64 (64 = the standard model),
    built through torchvision's own constructor so its initialisation is kept."""
    from torchvision.models.resnet import BasicBlock, ResNet

    class _ScaledResNet(ResNet):
        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):  # type: ignore[override]
            if planes == 64:  # first stage: its input is the stem's `width` channels
                self.inplanes = width
            return super()._make_layer(block, planes * width // 64, blocks, stride, dilate)

    net = _ScaledResNet(BasicBlock, [2, 2, 2, 2], num_classes=1000)
    if width != 64:  # the stem is not built by _make_layer: rebuild it at the scaled width
        net.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        net.bn1 = nn.BatchNorm2d(width)
    if cifar_stem:  # 3×3 stride-1 stem, no max-pool (He et al. 2016 §4.2 CIFAR variant)
        net.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
    for m in (net.conv1, net.bn1):  # the same initialisation torchvision gives the layers it built
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        else:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    net.fc = nn.Identity()
    return nn.Sequential(net, nn.Flatten())


@register_model("resnet18_cifar")
def resnet18_cifar(
    num_classes: int, in_channels: int = 3, width: int = 64, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem (3×3 conv stride 1, no max-pool), as in the paper.

    Args:
        width: channels of the stem and first stage, every stage scaled by width/64 (64 = the standard model).
            Range: ≥ 1.
        mean: per-channel mean of the normalisation layer; null = CIFAR statistics for RGB images, 0.5 for
            grayscale. Range: null or one number per channel.
        std: per-channel standard deviation of the normalisation layer; null = CIFAR statistics for RGB images,
            0.25 for grayscale. Range: null or one positive number per channel.
    """
    mean, std = _stats(in_channels, mean, std, (CIFAR_MEAN, CIFAR_STD))
    body = _torchvision_resnet18_body(in_channels, width, cifar_stem=True)
    return Classifier(Normalize(mean, std), body, nn.Linear(8 * width, num_classes))


@register_model("resnet18")
def resnet18_imagenet_stem(
    num_classes: int, in_channels: int = 3, width: int = 64, mean: Stats = None, std: Stats = None
) -> nn.Module:
    """torchvision ResNet-18 with the ImageNet stem (7×7 stride 2 + max-pool), used for Imagenette.

    Args:
        width: channels of the stem and first stage, every stage scaled by width/64 (64 = the standard model).
            Range: ≥ 1.
        mean: per-channel mean of the normalisation layer; null = ImageNet statistics for RGB images, 0.5 for
            grayscale. Range: null or one number per channel.
        std: per-channel standard deviation of the normalisation layer; null = ImageNet statistics for RGB images,
            0.25 for grayscale. Range: null or one positive number per channel.
    """
    mean, std = _stats(in_channels, mean, std, (IMAGENET_MEAN, IMAGENET_STD))
    body = _torchvision_resnet18_body(in_channels, width, cifar_stem=False)
    return Classifier(Normalize(mean, std), body, nn.Linear(8 * width, num_classes))


def model_options(name: str, options: dict[str, Any] | None, key: str = "model") -> dict[str, Any]:
    """A registered model's complete options (unknown keys and wrong types rejected, defaults filled in)."""
    if name not in MODELS:
        raise ValueError(f"{key}.name: {name!r} is not a known model; allowed: {sorted(MODELS)}")
    opts = bind_params(MODELS[name], options, key, skip=MODEL_ARGS)
    width = opts.get("width")
    require(width is None or width >= 1, f"{key}.width", width, "≥ 1 channel")
    return opts


def build_model(name: str, num_classes: int, in_channels: int, options: dict[str, Any] | None = None) -> nn.Module:
    """Instantiate a registered model. ``options`` are the model's keyword settings from the config."""
    return MODELS[name](num_classes=num_classes, in_channels=in_channels, **model_options(name, options))


def save_checkpoint(path: str, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save a plain state dict plus the spec that rebuilds the architecture (no pickled objects).

    ``spec`` = {"name", "num_classes", "in_channels", "options"}.
    """
    from unpoison.io import save_torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_torch({"spec": spec, "state_dict": state}, path)


def load_checkpoint(path: str) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_checkpoint` (loaded with ``weights_only=True``), in eval mode.

    Raises:
        unpoison.io.UnreadableArtifactError: the file is truncated, not a torch file, or not a checkpoint
            of :func:`save_checkpoint` (the message names the file and the rule that makes it).
    """
    from unpoison.io import load_torch, unreadable

    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or not {"spec", "state_dict"} <= ckpt.keys():
        raise unreadable(path, "not a checkpoint: no spec and state_dict")
    spec = ckpt["spec"]
    model = build_model(spec["name"], spec["num_classes"], spec["in_channels"], spec.get("options"))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise unreadable(path, f"its weights do not fit its spec {spec}: {str(err).splitlines()[0]}") from err
    return model.eval(), spec
