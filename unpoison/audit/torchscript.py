"""A TorchScript file (``torch.jit.save``) as an auditable model.

kronfluence hooks ``nn.Linear``/``nn.Conv2d`` instances; a loaded TorchScript model holds compiled modules it
cannot hook. So the file is converted to a ``torch.fx`` graph with torch's TorchScript→``torch.export``
converter (``torch._export.converter.TS2EPConverter``, a private, experimental torch API), and every
``aten.linear``/``aten.conv2d`` call of the graph is replaced by a real ``nn.Linear``/``nn.Conv2d`` holding
the same weights, named after them (``layer1.0.conv1``). The converted model must reproduce the TorchScript
model's outputs on the training images, or the audit stops.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import fx, nn

from unpoison.audit.inputs import AuditError, first_line

_FIX = (
    "audit the eager model instead: --arch MODULE:CLASS (or FILE.py:CLASS) with --weights a state_dict "
    "(torch.jit.load(path).state_dict() gives the weights, under the same names)"
)


def load_scripted(path: str | Path) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on the CPU, in eval mode, or raise naming the fix."""
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"--weights {str(path)!r}: file not found (--arch torchscript reads the model from it)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
            return torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as err:
        raise AuditError(
            f"--weights {str(path)!r} is not a TorchScript file ({first_line(err)}): with --arch "
            "torchscript give the file written by torch.jit.save(torch.jit.script(model), path)"
        ) from err


def _module_for(node: fx.Node, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """An nn.Linear/nn.Conv2d computing ``node`` (an aten.linear/conv2d call) with these tensors."""
    if node.target == torch.ops.aten.linear.default:
        module: nn.Module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        args = list(node.args) + [None] * (7 - len(node.args))
        stride, padding, dilation, groups = (
            node.kwargs.get(k, a) for k, a in zip(("stride", "padding", "dilation", "groups"), args[3:7])
        )
        module = nn.Conv2d(
            weight.shape[1] * (groups or 1),
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=tuple(stride or (1, 1)),
            padding=tuple(padding or (0, 0)),
            dilation=tuple(dilation or (1, 1)),
            groups=groups or 1,
            bias=bias is not None,
        )
    module.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    if bias is not None:
        module.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return module


def _attr(gm: fx.GraphModule, node: object) -> torch.Tensor | None:
    """The tensor a ``get_attr`` node reads (None for None); ValueError for anything computed in the graph."""
    if node is None:
        return None
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        raise ValueError("weights computed inside the graph")
    obj: object = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise ValueError("not a tensor")
    return obj


def _place(gm: fx.GraphModule, weight_target: str, module: nn.Module) -> str:
    """Put ``module`` where the weight's owner is (``layer1.0.conv1``), or beside it when that is taken."""
    owner, _, leaf = weight_target.rpartition(".")
    holder = gm.get_submodule(owner) if owner else gm
    held = {n for n, _ in holder.named_parameters()} | {n for n, _ in holder.named_buffers()}
    if owner and leaf == "weight" and held <= {"weight", "bias"} and not isinstance(holder, (nn.Linear, nn.Conv2d)):
        parent, _, name = owner.rpartition(".")
        setattr(gm.get_submodule(parent), name, module)
        return owner
    base, k = (owner or "layer").replace(".", "_"), 2
    while hasattr(gm, f"{base}_{k}"):
        k += 1
    gm.add_submodule(f"{base}_{k}", module)
    return f"{base}_{k}"


def hook_layers(gm: fx.GraphModule) -> list[str]:
    """Replace each aten.linear / aten.conv2d call whose weights are graph attributes by a module call.

    Returns:
        The names of the modules created (the weights' owner path, e.g. ``layer1.0.conv1``).
    """
    targets = (torch.ops.aten.linear.default, torch.ops.aten.conv2d.default)
    created: list[str] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in targets:
            continue
        weight_node = node.args[1]
        bias_node = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        try:
            module = _module_for(node, _attr(gm, weight_node), _attr(gm, bias_node))
        except ValueError:
            continue  # a weight computed in the graph: this layer stays untracked
        name = _place(gm, str(weight_node.target), module)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        created.append(name)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return created


def scripted_channels(scripted: torch.jit.ScriptModule) -> int | None:
    """Input channels of the first 4-D weight in the TorchScript model's state_dict (its stem), if any."""
    for name, tensor in scripted.state_dict().items():
        if name.endswith("weight") and tensor.ndim == 4:
            return int(tensor.shape[1])
    return None


def convert_scripted(
    scripted: torch.jit.ScriptModule, sample: torch.Tensor, path: str | Path
) -> tuple[nn.Module, list[str]]:
    """An eager, kronfluence-trackable copy of a TorchScript model.

    Args:
        scripted: the loaded model (:func:`load_scripted`).
        sample: a float batch of training images as the model takes them, to convert with.
        path: the file it came from (for messages).

    Returns:
        The converted model (eval mode) and the names of the Linear/Conv2d modules put into it.

    Raises:
        AuditError: a graph torch cannot convert, or a conversion that changes the outputs.
    """
    from torch._export.converter import TS2EPConverter

    quiet = [logging.getLogger(name) for name in ("torch._export", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in quiet]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Manually populate ... num_batches_tracked": unused buffers
            for logger in quiet:
                logger.setLevel(logging.ERROR)  # "dimension ... specialized" notes on the channel axis
            exported = TS2EPConverter(scripted, (sample,)).convert().module()
        gm = fx.GraphModule(exported, exported.graph)  # a plain GraphModule: the exported one refuses .eval()
    except Exception as err:
        raise AuditError(
            f"--weights {str(path)!r}: torch could not convert this TorchScript model into a graph "
            f"whose layers can be hooked ({type(err).__name__}: {first_line(err)}); {_FIX}"
        ) from err
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    created = hook_layers(gm)
    with torch.no_grad():
        want, got = scripted(sample), gm(sample)
    same = isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape == want.shape
    if not same or not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise AuditError(
            f"--weights {str(path)!r}: the converted TorchScript model does not reproduce the file's "
            f"outputs on the training images; {_FIX}"
        )
    return gm.eval(), created
