"""The eigendecomposition stage of EK-FAC, made to survive covariances ``torch.linalg.eigh`` cannot decompose.

kronfluence's ``perform_eigendecomposition`` (kronfluence/factor/eigen.py) stops at the first matrix that
``eigh`` fails on (``linalg.eigh: The algorithm failed to converge ...``), without naming the module. Such
matrices are common: a 3×3 convolution on the 1×1 maps of a standard ResNet-18's last stage on 32×32 images
sees 8 padding positions of 9, so its activation covariance has whole zero rows and columns and massively
repeated eigenvalues, on which LAPACK's divide-and-conquer solver may fail.

:func:`decompose_covariances` does, per module and per matrix, exactly what kronfluence does (normalise by
the count, symmetrise, ``eigh`` in ``eigendecomposition_dtype``, cast back to the covariance's dtype), so a
matrix that decomposes today gives bit-identical eigenvectors (tests/test_influence_eigen.py compares it
with kronfluence's ``fit_all_factors``). Only a matrix on which ``eigh`` fails is retried: with a diagonal
jitter ``mean(diag) × 1e-6``, growing ×10 up to ``× 1e-2`` (a multiple of the identity leaves the
eigenvectors unchanged; the jitter is subtracted from the eigenvalues again), then with SciPy's
relatively robust representations solver (``driver="evr"``, another LAPACK path) on the matrix itself.
Each matrix's record (size, attempts, jitter, solver) is returned and stored beside the factors.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate.utils.memory import should_reduce_batch_size
from kronfluence.utils.constants import (
    ACTIVATION_COVARIANCE_MATRIX_NAME,
    ACTIVATION_EIGENVALUES_NAME,
    ACTIVATION_EIGENVECTORS_NAME,
    GRADIENT_COVARIANCE_MATRIX_NAME,
    GRADIENT_EIGENVALUES_NAME,
    GRADIENT_EIGENVECTORS_NAME,
    NUM_ACTIVATION_COVARIANCE_PROCESSED,
    NUM_GRADIENT_COVARIANCE_PROCESSED,
)
from kronfluence.utils.state import release_memory

from unpoison.influence.errors import InfluenceStageError
from unpoison.influence.progress import Log, Progress

JITTER_START, JITTER_GROWTH, JITTER_CAP = 1e-6, 10.0, 1e-2  # relative to the matrix's mean diagonal
MATRICES = {  # factor → (covariance, count, eigenvectors, eigenvalues), kronfluence's names, in its order
    "activation": (
        ACTIVATION_COVARIANCE_MATRIX_NAME,
        NUM_ACTIVATION_COVARIANCE_PROCESSED,
        ACTIVATION_EIGENVECTORS_NAME,
        ACTIVATION_EIGENVALUES_NAME,
    ),
    "gradient": (
        GRADIENT_COVARIANCE_MATRIX_NAME,
        NUM_GRADIENT_COVARIANCE_PROCESSED,
        GRADIENT_EIGENVECTORS_NAME,
        GRADIENT_EIGENVALUES_NAME,
    ),
}


@dataclass
class EigenRecord:
    """What it took to decompose one covariance matrix.

    Attributes:
        size: its side; attempts: ``eigh`` calls made (1 = as kronfluence); jitter: the absolute diagonal
        jitter that succeeded (0 = none); solver: ``eigh`` (torch) or ``scipy-evr``; seconds: wall time.
    """

    size: int
    attempts: int = 1
    jitter: float = 0.0
    solver: str = "eigh"
    seconds: float = 0.0

    @property
    def helped(self) -> bool:
        """Whether this matrix needed more than kronfluence's single ``eigh``."""
        return self.attempts > 1 or self.solver != "eigh"


def _eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` with kronfluence's one retry after freeing memory on out-of-memory."""
    try:
        return torch.linalg.eigh(matrix)
    except Exception as err:  # same handling as kronfluence.factor.eigen.perform_eigendecomposition
        if should_reduce_batch_size(exception=err):
            release_memory()
            return torch.linalg.eigh(matrix)
        raise


def robust_eigh(matrix: torch.Tensor, module: str) -> tuple[torch.Tensor, torch.Tensor, EigenRecord]:
    """Eigen-decompose a symmetric matrix: plain ``eigh`` first, then jitter, then SciPy's ``evr`` solver.

    Raises:
        InfluenceStageError: the matrix holds NaN/inf values, or no attempt succeeded.
    """
    record = EigenRecord(size=matrix.shape[0])
    try:
        values, vectors = _eigh(matrix)
        return values, vectors, record
    except torch.linalg.LinAlgError as err:
        first = err
    if not torch.isfinite(matrix).all():
        raise InfluenceStageError("eigendecomposition", "the covariance holds NaN/inf values", module) from first
    scale = float(matrix.diagonal().mean())
    jitter = scale * JITTER_START
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    while scale > 0 and jitter <= scale * JITTER_CAP * (1 + 1e-9):
        record.attempts += 1
        try:
            values, vectors = torch.linalg.eigh(matrix + jitter * eye)
            record.jitter = jitter
            return values - jitter, vectors, record
        except torch.linalg.LinAlgError:
            jitter *= JITTER_GROWTH
    return _scipy_eigh(matrix, module, record, first)


def _scipy_eigh(matrix: torch.Tensor, module: str, record: EigenRecord, first: Exception):
    import scipy.linalg  # heavy: only when a matrix needs it

    record.attempts += 1
    try:
        values, vectors = scipy.linalg.eigh(matrix.cpu().numpy(), driver="evr")
    except (scipy.linalg.LinAlgError, ValueError) as err:
        raise InfluenceStageError(
            "eigendecomposition",
            f"eigh failed ({first}), and so did {record.attempts - 1} jittered retries up to "
            f"{JITTER_CAP:g} × the mean diagonal and SciPy's evr solver ({err})",
            module,
        ) from err
    record.solver = "scipy-evr"
    as_torch = lambda a: torch.from_numpy(a).to(dtype=matrix.dtype, device=matrix.device)
    return as_torch(values), as_torch(vectors), record


@torch.no_grad()
def decompose_covariances(
    covariances: dict[str, dict[str, torch.Tensor]],
    modules: list[str],
    device: torch.device,
    dtype: torch.dtype,
    log: Log,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, EigenRecord]]]:
    """Eigen-decompose every module's activation and gradient covariance as kronfluence does, robustly.

    Args:
        covariances: kronfluence's covariance factors (``load_covariance_matrices``).
        modules: the tracked module names, in kronfluence's order.
        device: where to decompose; dtype: kronfluence's ``eigendecomposition_dtype``.
        log: progress lines (weighted by n³ per matrix) and one line per matrix that needed help.

    Returns:
        (eigen factors in kronfluence's layout, module → factor → :class:`EigenRecord`).
    """
    eigen: dict[str, dict[str, torch.Tensor]] = {names[k]: {} for names in MATRICES.values() for k in (2, 3)}
    records: dict[str, dict[str, EigenRecord]] = {}
    sizes = {m: {f: covariances[MATRICES[f][0]][m].shape[0] for f in MATRICES} for m in modules}
    meter = Progress("eigendecomposition", sum(n**3 for s in sizes.values() for n in s.values()), log, unit="")
    for module in modules:
        records[module] = {}
        for factor, (cov_name, count_name, vec_name, val_name) in MATRICES.items():
            start = time.perf_counter()
            original_dtype = covariances[cov_name][module].dtype
            matrix = covariances[cov_name][module].to(device=device, dtype=dtype)
            matrix.div_(covariances[count_name][module].to(device=device))
            matrix = matrix + matrix.t()
            matrix.mul_(0.5)
            try:
                values, vectors, record = robust_eigh(matrix, module)
            except InfluenceStageError:
                raise
            except Exception as err:  # e.g. out of memory twice: name the module
                raise InfluenceStageError("eigendecomposition", err, module) from err
            del matrix
            eigen[val_name][module] = values.contiguous().to(dtype=original_dtype, device="cpu")
            eigen[vec_name][module] = vectors.contiguous().to(dtype=original_dtype, device="cpu")
            record.seconds = time.perf_counter() - start
            records[module][factor] = record
            if record.helped:
                log(
                    f"eigendecomposition: {module} {factor} covariance ({record.size}×{record.size}) needed help: "
                    f"{describe(record)}"
                )
            meter.advance(record.size**3, note=f"{module} {factor} ({record.size}×{record.size})")
    return eigen, records


def describe(record: EigenRecord) -> str:
    """One phrase: what decomposing the matrix took."""
    if record.solver != "eigh":
        return f"eigh failed, jitter up to {JITTER_CAP:g} × mean diagonal failed, solved by {record.solver}"
    if record.jitter:
        return f"eigh failed; succeeded with diagonal jitter {record.jitter:.3g} after {record.attempts} attempts"
    return "plain eigh"


def records_to_json(records: dict[str, dict[str, EigenRecord]]) -> dict[str, Any]:
    """The records as plain JSON, plus ``helped``: the ``module/factor`` names that needed more than ``eigh``."""
    plain = {m: {f: asdict(r) | {"helped": r.helped} for f, r in fr.items()} for m, fr in records.items()}
    helped = [f"{m}/{f}" for m, fr in records.items() for f, r in fr.items() if r.helped]
    return {"modules": plain, "helped": helped}
