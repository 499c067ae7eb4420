"""Audit your own model: Δ-Influence on a user's checkpoint, training set and suspicious image(s).

No attack metadata, no ground truth: the inputs are a plain state_dict and its architecture, the training
set (an ImageFolder tree or an .npz) and the image(s) the model gets suspiciously wrong. The machinery is the
pipeline's (EK-FAC factors, probes scored in one pass, the ``delta_influence`` rule). Modules: ``inputs``
(reading and checking the files), ``core`` (the computation), ``outputs`` (the files written), ``api``
(:func:`audit`, files to outputs), ``cli`` (``unpoison-audit``).
"""

from unpoison.audit.api import audit
from unpoison.audit.core import AuditResult, AuditSettings
from unpoison.audit.inputs import AuditError

__all__ = ["audit", "AuditResult", "AuditSettings", "AuditError"]
