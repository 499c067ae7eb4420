"""Audit your own model: Δ-Influence on a user's checkpoint, training set and suspicious image(s).

No attack metadata, no ground truth: the inputs are the model (an architecture and a plain state_dict, the
user's own class, a TorchScript file, or an ``nn.Module``), the training set (an ImageFolder tree, an .npz, a
Dataset or tensors) and the image(s) the model gets suspiciously wrong. The machinery is the pipeline's
(EK-FAC factors, probes scored in one pass, the ``delta_influence`` rule). Modules: ``inputs`` (files),
``objects`` (Python objects), ``model``/``build``/``user_code``/``torchscript`` (the model),
``model_checks`` (trackable layers, input size, outputs), ``core`` (the computation), ``runlog`` (audit.log,
stage failures), ``outputs`` (the files written), ``api`` (:func:`audit`), ``cli`` (``unpoison-audit``).
"""

from unpoison.audit.api import audit
from unpoison.audit.core import AuditResult, AuditSettings
from unpoison.audit.inputs import AuditError
from unpoison.audit.runlog import AuditStageError

__all__ = ["audit", "AuditResult", "AuditSettings", "AuditError", "AuditStageError"]
