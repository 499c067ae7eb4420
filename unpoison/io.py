"""Atomic, safe reading and writing of artifacts (tensors, checkpoints, JSON, numpy arrays).

Every writer goes through a temporary file in the destination directory followed by ``os.replace``, so a
crash never leaves a half-written artifact behind. Tensors and checkpoints are loaded with
``weights_only=True``: no arbitrary object is ever unpickled. An artifact that cannot be read (truncated by
a full disk or a killed copy, or not a torch file) raises :class:`UnreadableArtifactError` naming the file
and the rule that makes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` (Linux) without changing it.

    Elsewhere it is read by setting and restoring it, which is racy only against threads creating files
    at that instant (none do in a job).
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give ``path`` (a file, or a directory tree) the permissions a plain ``open``/``mkdir`` would have.

    ``tempfile.mkstemp`` makes 0600 files, ``TemporaryDirectory`` 0700 directories and safetensors writes
    0600 files, so artifacts made through them would be unreadable to collaborators sharing a results
    directory: files get ``0o666 & ~umask`` and directories ``0o777 & ~umask`` (0644/0755 at umask 022).
    """
    mask = current_umask()
    path = Path(path)
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The artifact gets the permissions of a plain ``open`` under the process's umask (see :func:`apply_umask`).

    The temporary file is removed whatever ends the block (exception, KeyboardInterrupt, SIGTERM under
    :func:`unpoison.runtime.logged`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.close(fd)
        yield Path(tmp)
        apply_umask(tmp)  # mkstemp made it 0600
        os.replace(tmp, path)
    finally:  # also on KeyboardInterrupt and on SIGTERM turned into an exception (unpoison.runtime)
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def save_torch(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save plain tensors / state dicts / containers of them atomically with ``torch.save``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


class UnreadableArtifactError(RuntimeError):
    """An artifact exists but cannot be read; the message names the file and the rule that makes it."""


def producing_rule(path: str | os.PathLike[str]) -> str | None:
    """The workflow rule that writes the artifact at ``path`` (by its file name), or None if unknown."""
    path = Path(path)
    if path.suffix == ".pt" and "unlearned" in path.parent.parts:
        return "unlearn"
    if path.suffix == ".pt" and path.parent.name == "scores":
        return "score_probes"
    if path.name == "model.pt" and path.parent.parent.name == "clean":  # results/{dataset}/clean/s{seed}/model.pt
        return "train_clean"
    return _RULE_BY_NAME.get(path.name)


_RULE_BY_NAME = {
    "clean.pt": "prepare_dataset",
    "poisoned.pt": "poison_dataset",
    "model.pt": "train_model",
    "queries.pt": "select_queries",
}


def unreadable(path: str | os.PathLike[str], what: str = "truncated or not a torch file") -> UnreadableArtifactError:
    """The error for an artifact at ``path`` that cannot be used: delete it, re-run, and which rule makes it."""
    rule = producing_rule(path)
    made_by = f"; it is made by rule {rule}" if rule else ""
    return UnreadableArtifactError(f"{path} is unreadable ({what}): delete it and re-run{made_by}")


def load_torch(path: str | os.PathLike[str], mmap: bool = False) -> Any:
    """Load an artifact written by :func:`save_torch` on CPU, refusing arbitrary pickled objects.

    Args:
        path: the artifact.
        mmap: memory-map the tensors instead of reading them (cheap when only part is needed).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnreadableArtifactError: the file is truncated, not a torch file, or holds pickled objects.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):  # not the content's fault
        raise
    except Exception as err:  # damaged content: RuntimeError, EOFError, UnpicklingError, struct.error, OSError
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise unreadable(path, f"truncated or not a torch file: {detail}") from err


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported: no import for this check
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON atomically (numpy/torch scalars and arrays are converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_to_jsonable(obj), indent=2, sort_keys=True) + "\n")


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def save_npy(array: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Save a numpy array atomically (``np.save`` would append ``.npy`` to a temporary name)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)


def load_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """Load a numpy array saved by :func:`save_npy` (no pickles)."""
    return np.load(path, allow_pickle=False)


def meta_path(path: str | os.PathLike[str]) -> Path:
    """Where the JSON of arguments that produced ``path`` lives: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def save_meta(path: str | os.PathLike[str], **arguments: Any) -> None:
    """Write the arguments that produced the artifact at ``path`` next to it, with their provenance (code
    version, config hash, the ``seed`` argument if any, library versions)."""
    from unpoison.provenance import provenance

    seed = arguments.get("seed")
    record = provenance(seed=seed if isinstance(seed, (int, np.integer)) else None)
    save_json({**arguments, "provenance": record}, meta_path(path))


def table_seeds(df: Any, seeds: Iterable[int] | None = None) -> list[int] | None:
    """The seeds a table holds: ``seeds`` if given, else its ``seed`` column, else ``df.attrs["seeds"]``."""
    if seeds is not None:
        return sorted({int(s) for s in seeds})
    if "seed" in df.columns:
        return sorted({int(s) for s in df["seed"].dropna()})
    return df.attrs.get("seeds")


def write_csv(df: Any, path: str | os.PathLike[str], seeds: Iterable[int] | None = None) -> None:
    """Write a table atomically, and beside it (``<path>.meta.json``) its provenance: code version, config
    hash, the seeds it holds (``seeds`` or :func:`table_seeds`), library versions."""
    from unpoison.provenance import provenance

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    save_json({"n_rows": len(df), "provenance": provenance(seeds=table_seeds(df, seeds))}, meta_path(path))


def write_text(text: str, path: str | os.PathLike[str], seeds: Iterable[int] | None = None) -> None:
    """Write a Markdown table atomically; with ``seeds``, a provenance line follows it."""
    from unpoison.provenance import provenance, provenance_line

    if seeds is not None:
        text = text.rstrip("\n") + "\n\n" + provenance_line(provenance(seeds=sorted({int(s) for s in seeds}))) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
