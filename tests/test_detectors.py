import numpy as np
import pytest
import torch

from unpoison.detectors import DetectorInputs, get_detector
from unpoison.detectors.delta_influence import delta_flags
from unpoison.metrics import detection_metrics


def _scores():
    # 1 test point, base + 4 transforms, 4 training points
    base = torch.tensor([10.0, 10.0, -1.0, 5.0])
    transformed = torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0],  # point 0 collapses under all 4 → flagged
            [2.0, 20.0, 2.0, 2.0],  # point 1 collapses under 3 of 4 → flagged only when k ≥ 1
            [0.0, 0.0, 0.0, 0.0],  # point 2 rises (base negative) → never flagged with tau = 0
            [6.0, 6.0, 6.0, 0.0],  # point 3 collapses once
        ]
    ).T  # (n_b, N)
    return torch.cat([base[None], transformed])[None]


def test_delta_rule_counts_collapses_against_n_b_minus_k():
    s = _scores()
    assert delta_flags(s, 0.0, 0)[0].tolist() == [True, False, False, False]
    assert delta_flags(s, 0.0, 1)[0].tolist() == [True, True, False, False]
    assert delta_flags(s, -8.5, 0)[0].tolist() == [True, False, False, False]
    assert delta_flags(s, -9.5, 0)[0].tolist() == [False, False, False, False]


def test_detectors_read_their_probe_and_intersect_over_points():
    s = _scores()
    two = torch.cat([s, s[:, :, [1, 0, 2, 3]]])  # second test point: points 0 and 1 swapped
    inputs = DetectorInputs(scores={"both": {"scores": two}, "base": {"scores": two[:, :1]}})
    assert get_detector("delta_influence", {"k": 1}).detect(inputs).tolist() == [0, 1]
    assert get_detector("delta_influence", {"k": 0}).detect(inputs).tolist() == []  # 0 then 1: no overlap
    assert get_detector("delta_influence", {"k": 0, "n_points": 1}).detect(inputs).tolist() == [0]
    assert get_detector("ekfac", {"threshold": 4.0}).detect(inputs).tolist() == [0, 1, 3]
    label_only = get_detector("label_only", {"k": 1})
    assert label_only.probe == "label"
    with pytest.raises(KeyError):
        label_only.detect(inputs)  # it must not silently use another probe


def test_k_must_be_below_n_b():
    with pytest.raises(ValueError, match=r"k: 4 must satisfy 0 ≤ k < n_b"):
        get_detector("delta_influence", {"k": 4}).check(4)


def test_unknown_detector_lists_the_known_ones():
    with pytest.raises(ValueError, match="delta_influence"):
        get_detector("magic")


def test_detection_metrics():
    m = detection_metrics(np.array([1, 2, 3, 9]), [2, 3, 4])
    assert m == {"n_flagged": 4, "true_positives": 2, "n_poisons": 3, "tpr": 2 / 3, "precision": 0.5}
    assert detection_metrics(np.array([], dtype=np.int64), [1])["precision"] == 0.0


# ---- activation clustering and spectral signatures: synthetic penultimate features ----------------------


def _planted_features(n_clean=180, n_planted=20, dim=16, seed=0):
    """Three labels with well-separated means; ``n_planted`` points drawn around label 0's mean but labelled 1
    (a dirty-label backdoor's footprint). Returns features, labels and the planted indices."""
    rng = np.random.default_rng(seed)
    means = np.zeros((3, dim))
    means[0, 0], means[1, 1], means[2, 2] = 8.0, 8.0, 8.0
    feats = [rng.normal(means[c], 1.0, (n_clean, dim)) for c in range(3)]
    labels = [np.full(n_clean, c) for c in range(3)]
    feats.append(rng.normal(means[0], 1.0, (n_planted, dim)))
    labels.append(np.full(n_planted, 1))
    planted = np.arange(3 * n_clean, 3 * n_clean + n_planted)
    inputs = DetectorInputs(
        features=torch.tensor(np.concatenate(feats), dtype=torch.float32), y_train=torch.tensor(np.concatenate(labels))
    )
    return inputs, planted


def _on_label(flagged: np.ndarray, inputs: DetectorInputs, label: int) -> np.ndarray:
    return flagged[inputs.y_train.numpy()[flagged] == label]


def test_activation_clustering_recovers_the_planted_cluster_of_its_label():
    inputs, planted = _planted_features()
    flagged = get_detector("activation_clustering").detect(inputs)
    on_target = _on_label(flagged, inputs, 1)
    m = detection_metrics(on_target, planted)
    assert m["precision"] >= 0.9 and m["tpr"] >= 0.9, m
    assert np.array_equal(flagged, np.unique(flagged))  # sorted, unique
    per_label = np.bincount(inputs.y_train.numpy()[flagged], minlength=3)
    assert (per_label > 0).all() and (per_label <= 100).all(), per_label  # each label split on its own


def test_activation_clustering_skips_labels_too_small_to_split():
    inputs, _ = _planted_features()
    small = DetectorInputs(features=inputs.features[:4], y_train=torch.zeros(4, dtype=torch.int64))
    assert get_detector("activation_clustering", {"n_components": 3}).detect(small).tolist() == []  # 4 < 3 + 2
    assert len(get_detector("activation_clustering", {"n_components": 2}).detect(small)) in (1, 2)


def test_spectral_signatures_recovers_the_planted_cluster_of_its_label():
    inputs, planted = _planted_features()
    eps = 20 / 200 / 1.5  # so that ceil(1.5 · eps · n) = 20 on the target label's 200 points
    flagged = get_detector("spectral_signatures", {"eps": eps}).detect(inputs)
    on_target = _on_label(flagged, inputs, 1)
    assert len(on_target) == 20
    assert detection_metrics(on_target, planted)["precision"] >= 0.9


def test_spectral_signatures_flags_ceil_of_one_and_a_half_eps_per_label():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 200)
    inputs = DetectorInputs(features=torch.tensor(rng.normal(size=(600, 8))), y_train=torch.tensor(labels))
    flagged = get_detector("spectral_signatures", {"eps": 0.1}).detect(inputs)
    assert np.bincount(labels[flagged]).tolist() == [30, 30, 30]
    assert np.bincount(labels[get_detector("spectral_signatures", {"eps": 0.05}).detect(inputs)]).tolist() == [
        15,
        15,
        15,
    ]


def test_feature_detectors_refuse_nan_features():
    inputs, _ = _planted_features()
    inputs.features[3, 2] = float("nan")
    for name in ("activation_clustering", "spectral_signatures"):
        with pytest.raises(ValueError, match="NaN or infinite"):
            get_detector(name).detect(inputs)


def test_detectors_declare_what_they_read_from_the_one_table_of_input_kinds():
    from unpoison.detectors import DETECTORS
    from unpoison.detectors.inputs import INPUT_KINDS

    assert (
        set(DETECTORS["activation_clustering"].reads)
        == set(DETECTORS["spectral_signatures"].reads)
        == {"features", "poisoned"}
    )
    assert DETECTORS["activation_clustering"].probe is None and not DETECTORS["activation_clustering"].reads_query()
    freq = DETECTORS["frequency"]
    assert set(freq.reads) == {"dataset_model", "poisoned"} and freq.probe is None
    assert set(freq.dataset_model_fields) == {"seed", "epochs", "lr"}  # the threshold does not re-train
    assert DETECTORS["delta_influence"].reads == () and DETECTORS["delta_influence"].reads_query()
    for name, cls in DETECTORS.items():
        assert set(cls.reads) <= set(INPUT_KINDS), name
        assert cls.display_name and cls.citation, f"{name} needs a display name and a citation"


def test_sweep_rows_equal_what_the_detectors_flag():
    from unpoison.detectors import DetectorInputs, get_detector
    from unpoison.metrics import detection_metrics
    from unpoison.stages.evaluate import sweep_detector
    from unpoison.sweep import SweepGrid

    g = torch.Generator().manual_seed(0)
    n, n_b = 200, 8
    both = torch.randn(2, 1 + n_b, n, generator=g) * 5
    both[:, 1:, :20] = both[:, :1, :20] - 3.0  # 20 "poisons": influence collapses under every transform
    base = both[:, :1, :] + 50 * (torch.arange(n) < 20)
    poisons = list(range(20))
    grid = SweepGrid(taus=[0.0, -1.0, -5.0], ks=[0, 1, 8], thresholds=[0.0, 40.0], n_points=2)
    scores = {"both": {"scores": both}, "base": {"scores": base}}
    rows = sweep_detector(
        "delta_influence", "delta_influence", {"tau": 0.0, "k": 1, "n_points": None}, scores, poisons, grid
    ) + sweep_detector("ekfac", "ekfac", {"threshold": 0.0, "n_points": None}, scores, poisons, grid)
    assert len(rows) == 3 * 2 + 2  # k = 8 = n_b is not a valid k and is skipped
    inputs = DetectorInputs(scores={"both": {"scores": both}, "base": {"scores": base}})
    for r in rows:
        if r["detector"] == "delta_influence":
            det = get_detector("delta_influence", {"tau": r["tau"], "k": r["k"], "n_points": 2})
        else:
            det = get_detector("ekfac", {"threshold": r["threshold"], "n_points": 2})
        expected = detection_metrics(det.detect(inputs), poisons)
        assert {k: r[k] for k in expected} == expected
    strict = next(r for r in rows if r["detector"] == "delta_influence" and r["tau"] == -5.0 and r["k"] == 0)
    assert strict["n_flagged"] < next(r for r in rows if r["tau"] == 0.0 and r["k"] == 1)["n_flagged"]


def test_counterfactual_splits_poisons_into_detected_and_missed():
    from unpoison.stages.evaluate import split_poisons

    detected, missed = split_poisons(np.array([1, 5, 7, 100]), [5, 6, 7, 8])
    assert detected.tolist() == [5, 7] and missed.tolist() == [6, 8]


# ---- the oracle: reads the ground truth, flags a seeded share of the true poisons -------------------------


@pytest.mark.parametrize("fraction, expected", [(0.1, 4), (0.5, 20), (1.0, 40), (0.11, 5), (0.01, 1)])
def test_oracle_flags_exactly_ceil_fraction_of_the_true_poisons(fraction, expected):
    poisons = list(range(100, 1400, 33))[:40]
    inputs = DetectorInputs(truth={"poison_indices": poisons}, seed=3)
    flagged = get_detector("oracle", {"fraction": fraction}).detect(inputs)
    assert len(flagged) == expected and set(flagged.tolist()) <= set(poisons)
    assert flagged.dtype == np.int64 and np.all(np.diff(flagged) > 0)


def test_oracle_draws_are_seeded_by_the_run():
    poisons = list(range(0, 400, 10))
    det = get_detector("oracle", {"fraction": 0.5})
    a = det.detect(DetectorInputs(truth={"poison_indices": poisons}, seed=0))
    assert np.array_equal(a, det.detect(DetectorInputs(truth={"poison_indices": poisons}, seed=0)))
    assert not np.array_equal(a, det.detect(DetectorInputs(truth={"poison_indices": poisons}, seed=1)))


def test_only_the_oracle_reads_the_truth():
    from unpoison.detectors import DETECTORS

    assert [n for n, cls in DETECTORS.items() if cls.needs_truth()] == ["oracle"]
    with pytest.raises(ValueError, match="ground truth"):
        get_detector("oracle").detect(DetectorInputs(seed=0))
    with pytest.raises(ValueError, match="fraction: 0.0 is not allowed"):
        get_detector("oracle", {"fraction": 0.0})


def test_the_detect_stage_refuses_truth_for_other_detectors(tmp_path):
    from unpoison.stages.detect import detect

    truth = tmp_path / "truth.json"
    truth.write_text('{"poison_indices": [1, 2, 3, 4]}')
    queries = str(tmp_path / "queries.pt")  # no meta file: the run's status is ok
    with pytest.raises(ValueError, match="does not read `truth`"):
        detect(
            method="ekfac",
            settings={"threshold": 0.0, "n_points": None},
            seed=0,
            queries=queries,
            flagged=str(tmp_path / "f.npy"),
            truth=str(truth),
        )
    detect(
        method="oracle",
        settings={"fraction": 0.5},
        seed=0,
        queries=queries,
        flagged=str(tmp_path / "o.npy"),
        truth=str(truth),
    )
    assert len(np.load(tmp_path / "o.npy")) == 2


def test_a_detector_asking_for_more_points_than_the_attack_gives_is_not_applicable(tmp_path):
    """Witches' Brew has one target image: a 5-point variant writes empty flags whose meta status says why, and the
    evaluation and unlearning stages read that status (unpoison.status.read_status)."""
    from unpoison.io import save_torch
    from unpoison.stages.detect import detect
    from unpoison.status import State, read_status

    save_torch({"scores": torch.zeros(1, 7, 30), "labels": torch.zeros(1, 7, dtype=torch.int64)}, tmp_path / "both.pt")
    save_torch(
        {
            "x": torch.zeros(1, 1, 8, 8, dtype=torch.uint8),
            "labels": torch.zeros(1, dtype=torch.int64),
            "test_index": torch.zeros(1, dtype=torch.int64),
        },
        tmp_path / "queries.pt",
    )
    out = tmp_path / "flagged.npy"
    args = {
        "method": "delta_influence",
        "seed": 0,
        "queries": str(tmp_path / "queries.pt"),
        "flagged": str(out),
        "scores_both": str(tmp_path / "both.pt"),
    }
    detect(settings={"tau": 0.0, "k": 1, "n_points": 5}, **args)
    assert np.load(out).size == 0
    status = read_status(out)
    assert status.state is State.TOO_FEW_POINTS
    assert status.label == "n/a (n_points = 5, but the attack gives 1 affected test point(s))"
    detect(settings={"tau": 0.0, "k": 1, "n_points": 1}, **args)
    assert read_status(out).ok
