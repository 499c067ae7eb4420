"""Control queries and the ground-truth-free threshold of delta_influence_controls."""

import numpy as np
import pytest
import torch
from torch import nn

from unpoison.controls import control_threshold, normalised_margin, select_controls
from unpoison.data import ImageData
from unpoison.detectors import DetectorInputs, get_detector
from unpoison.detectors.delta_influence import delta_flags


class BrightnessModel(nn.Module):
    """Class 1 when the top-left pixel is bright, else class 0 (a model whose errors we control)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x[:, 0, 0, 0] > 0.5).float()
        return torch.stack([1 - bright, bright], dim=1)


def _data(n_test: int = 40) -> ImageData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_test, 1, 4, 4), dtype=torch.uint8, generator=g)
    y = (x[:, 0, 0, 0] > 127).long()
    y[:10] = 1 - y[:10]  # the model gets these ten wrong
    return ImageData(x_train=x.clone(), y_train=y.clone(), x_test=x, y_test=y, classes=["a", "b"])


def test_controls_are_correctly_classified_test_images_drawn_by_seed():
    data, model = _data(), BrightnessModel()
    a = select_controls(model, data, 12, seed=5, device=torch.device("cpu"))
    b = select_controls(model, data, 12, seed=5, device=torch.device("cpu"))
    c = select_controls(model, data, 12, seed=6, device=torch.device("cpu"))
    idx = a["test_index"].numpy()
    assert len(set(idx)) == 12 and (idx >= 10).all()  # never one of the ten misclassified images
    assert torch.equal(a["x"], data.x_test[a["test_index"]]) and torch.equal(a["labels"], data.y_test[a["test_index"]])
    assert torch.equal(a["test_index"], b["test_index"]) and not torch.equal(a["test_index"], c["test_index"])
    with pytest.raises(ValueError, match="queries.controls"):
        select_controls(model, data, 31, seed=5, device=torch.device("cpu"))


def test_normalised_margin_below_zero_is_exactly_the_papers_rule():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(3, 1 + 8, 500, generator=g) * torch.tensor([1.0, 30.0, 0.01])[:, None, None]
    for k in (0, 1, 3):
        assert torch.equal(normalised_margin(scores, k) < 0, delta_flags(scores, 0.0, k))


def _synthetic(n: int, n_b: int, poisons: np.ndarray, mild: float, gen: torch.Generator) -> torch.Tensor:
    """Scores (1, 1 + n_b, n): noise around each point's base influence; a fraction ``mild`` of the points
    drops a little under every transform (the clean points the paper's τ = 0 flags); ``poisons`` collapse."""
    base = torch.randn(n, generator=gen)
    scores = base[None, :] + 0.05 * torch.randn(n_b, n, generator=gen)
    drops = torch.rand(n, generator=gen) < mild
    scores[:, drops] -= 0.2
    if len(poisons):
        base[poisons] += 6.0
        scores[:, poisons] = base[poisons] - 6.0 + 0.05 * torch.randn(n_b, len(poisons), generator=gen)
    return torch.cat([base[None], scores])[None]


def test_threshold_from_controls_drops_the_clean_points_that_tau_zero_flags():
    gen = torch.Generator().manual_seed(2)
    n, n_b, poisons = 1000, 20, np.arange(0, 1000, 50)
    query = _synthetic(n, n_b, poisons, mild=0.2, gen=gen)
    controls = torch.cat([_synthetic(n, n_b, np.array([], dtype=int), mild=0.2, gen=gen) for _ in range(5)])
    det = get_detector("delta_influence_controls", {"alpha": 0.01, "k": 1})
    flagged = det.detect(DetectorInputs(scores={"both": {"scores": query}, "controls_both": {"scores": controls}}))
    paper = get_detector("delta_influence", {"tau": 0.0, "k": 1}).detect(
        DetectorInputs(scores={"both": {"scores": query}})
    )
    tp = np.intersect1d(flagged, poisons)
    assert len(tp) == len(poisons) and len(flagged) - len(tp) <= 0.03 * n  # every poison; about alpha of the clean
    paper_precision = len(np.intersect1d(paper, poisons)) / len(paper)
    assert paper_precision < 0.15 and len(tp) / len(flagged) > 4 * paper_precision  # τ = 0 flags the mild drops too
    assert det.threshold == pytest.approx(control_threshold(controls, 1, 0.01))
    # a clean query flags about alpha of the points
    clean = _synthetic(n, n_b, np.array([], dtype=int), mild=0.2, gen=gen)
    on_clean = det.detect(DetectorInputs(scores={"both": {"scores": clean}, "controls_both": {"scores": controls}}))
    assert len(on_clean) <= 0.03 * n


def test_larger_alpha_flags_a_superset_and_missing_controls_are_refused():
    gen = torch.Generator().manual_seed(3)
    query = _synthetic(300, 10, np.arange(10), mild=0.3, gen=gen)
    controls = torch.cat([_synthetic(300, 10, np.array([], dtype=int), mild=0.3, gen=gen) for _ in range(3)])
    sets = [
        get_detector("delta_influence_controls", {"alpha": a}).detect(
            DetectorInputs(scores={"both": {"scores": query}, "controls_both": {"scores": controls}})
        )
        for a in (0.001, 0.01, 0.1)
    ]
    assert set(sets[0]) <= set(sets[1]) <= set(sets[2]) and len(sets[2]) > len(sets[0])
    with pytest.raises(ValueError, match="controls_both"):
        get_detector("delta_influence_controls", {}).detect(DetectorInputs(scores={"both": {"scores": query}}))
    with pytest.raises(ValueError, match="alpha"):
        get_detector("delta_influence_controls", {"alpha": 1.5})


def test_controls_of_the_querys_class_only():
    data, model = _data(), BrightnessModel()
    for label in (0, 1):
        c = select_controls(model, data, 5, seed=5, device=torch.device("cpu"), label=label)
        idx = c["test_index"].numpy()
        assert (c["labels"] == label).all() and (data.y_test[idx] == label).all() and (idx >= 10).all()
    n_right_1 = int(((data.y_test == 1) & (torch.arange(40) >= 10)).sum())
    with pytest.raises(ValueError, match="as class 1"):
        select_controls(model, data, n_right_1 + 1, seed=5, device=torch.device("cpu"), label=1)


def test_contrast_drops_the_points_that_also_collapse_for_same_class_controls():
    """Points 0–9 collapse for the suspicious query only (poisons); 10–39 collapse for it AND for every control
    (clean supporters of the class); the rest never collapse. The contrast keeps 0–9; a larger
    max_control_fraction keeps poison 5, which also collapses for two of the six controls."""
    n, n_b, c = 200, 10, 6

    def scores(collapsing: np.ndarray, q: int) -> torch.Tensor:
        s = torch.ones(q, 1 + n_b, n)
        s[:, 1:, collapsing] = -1.0  # Δ = −2 < 0 under every transform
        return s

    query = scores(np.arange(40), 1)
    controls = scores(np.arange(10, 40), c)
    controls[:2, 1:, 5] = -1.0  # poison 5 also collapses for two controls
    inputs = DetectorInputs(scores={"both": {"scores": query}, "controls_both": {"scores": controls}})
    plain = get_detector("delta_influence", {"tau": 0.0, "k": 1}).detect(inputs)
    strict = get_detector("delta_influence_contrast", {"tau": 0.0, "k": 1, "max_control_fraction": 0.0}).detect(inputs)
    loose = get_detector("delta_influence_contrast", {"tau": 0.0, "k": 1, "max_control_fraction": 2 / 6}).detect(inputs)
    default = get_detector("delta_influence_contrast", {}).detect(inputs)
    assert plain.tolist() == list(range(40))
    assert strict.tolist() == [i for i in range(10) if i != 5]
    assert loose.tolist() == list(range(10))
    assert default.tolist() == list(range(10))  # 0.9 of 6 controls: points collapsing for all 6 are dropped
    with pytest.raises(ValueError, match="controls_both"):
        get_detector("delta_influence_contrast", {}).detect(DetectorInputs(scores={"both": {"scores": query}}))
