"""The frequency detector (FreqDef): its DCT, its synthetic triggers, its classifier on digits, its flags."""

import numpy as np
import pytest
import scipy.fft
import torch

from unpoison.attacks.badnet import apply_patch
from unpoison.detectors import DetectorInputs, get_detector
from unpoison.detectors.frequency import dct2, frequency_checkpoint, train_frequency_classifier
from unpoison.detectors.synthetic_triggers import KINDS, block_limits, synthetic_triggers

DEV = torch.device("cpu")


def test_dct2_is_scipys_orthonormal_dct_ii_per_channel():
    x = torch.rand(3, 2, 8, 6, generator=torch.Generator().manual_seed(0))
    expected = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert np.allclose(dct2(x).numpy(), expected, atol=1e-5)


def test_block_sizes_scale_with_the_image_side():
    assert block_limits(32, 32) == (2, 7, 5)  # the reference's 2–7 px blocks, 0–5 px from a corner
    assert block_limits(8, 8) == (2, 3, 1)  # ≥ 2 px and two sizes on 8×8 digits
    assert block_limits(160, 160) == (10, 35, 25)


def test_synthetic_triggers_cover_every_family_and_stay_valid_images():
    g = torch.Generator().manual_seed(0)
    x = torch.full((500, 1, 8, 8), 0.2)
    out, kinds = synthetic_triggers(x, g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)  # 8-bit levels, like uint8 images
    assert set(kinds.tolist()) == set(range(len(KINDS)))
    changed = (out - x).abs().flatten(1).amax(1) > 0
    assert changed.all()  # on a flat grey image every family leaves a trace
    white = out[kinds == KINDS.index("white_block")][:, 0]
    for img in white:  # a 2–3 px white block touching or 1 px away from a corner
        rows, cols = torch.nonzero(img == 1.0, as_tuple=True)
        assert 2 <= rows.max() - rows.min() + 1 <= 3 and 2 <= cols.max() - cols.min() + 1 <= 3
        assert min(rows.min(), 7 - rows.max()) <= 1 and min(cols.min(), 7 - cols.max()) <= 1
    shadow = out[kinds == KINDS.index("shadow")]
    assert (shadow[:, :, :4] == x[0, 0, 0, 0]).all()  # only the lower half is darkened
    assert torch.allclose(shadow[shadow != 0.2], torch.tensor(0.1), atol=1 / 255)


@pytest.fixture(scope="module")
def freqdef(digits):
    """FreqDef trained with the real training function on digits' clean training images (~15 s)."""
    torch.manual_seed(0)
    net, summary = train_frequency_classifier(digits.x_train, seed=0, epochs=8, lr=1.0, device=DEV)
    return net, summary


def test_freqdef_tells_clean_from_synthetically_triggered_digits(freqdef):
    _, summary = freqdef
    assert summary["n_holdout"] == 144 and summary["n_fit"] == 1437 - 144
    assert summary["holdout_accuracy"] >= 0.8, summary  # 8 epochs; 30 at lr 1.0 give 87.5–90.3 % (config.yaml)
    by_kind = summary["holdout_triggered_accuracy_by_kind"]
    assert by_kind["white_block"] >= 0.9 and by_kind["gaussian_noise"] >= 0.9, by_kind


def test_frequency_detector_flags_patched_images_of_a_set_it_never_trained_on(freqdef, digits):
    net, _ = freqdef
    x = digits.x_test[:200]
    patched = apply_patch(x[:40], "checkerboard", size=3, value=255, margin=0)  # the default digits attack
    inputs = DetectorInputs(
        x_train=torch.cat([patched, x[40:]]),
        y_train=digits.y_test[:200],
        dataset_model=frequency_checkpoint(net, (1, 8, 8)),
    )
    flagged = get_detector("frequency").detect(inputs)
    tpr = np.isin(np.arange(40), flagged).mean()
    fpr = np.isin(np.arange(40, 200), flagged).mean()
    assert tpr > fpr + 0.3, (tpr, fpr)
    stricter = get_detector("frequency", {"threshold": 0.99}).detect(inputs)
    assert set(stricter) <= set(flagged) and len(stricter) < len(flagged)


def test_frequency_detector_refuses_images_of_another_shape(freqdef):
    net, _ = freqdef
    inputs = DetectorInputs(
        x_train=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), dataset_model=frequency_checkpoint(net, (1, 8, 8))
    )
    with pytest.raises(ValueError, match=r"trained on \[1, 8, 8\] images"):
        get_detector("frequency").detect(inputs)
