import numpy as np
import pytest
import torch

from unpoison.data import DatasetError, describe_dataset, load_dataset
from unpoison.data.core import TensorDataset01


def test_digits_are_uint8_nchw_and_split_is_stratified(digits):
    assert digits.x_train.dtype == torch.uint8 and digits.x_train.shape[1:] == (1, 8, 8)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert int(digits.x_train.max()) == 255  # 16 → 255 rescaling reaches full range
    train_share = np.bincount(digits.y_train.numpy()) / len(digits.y_train)
    test_share = np.bincount(digits.y_test.numpy()) / len(digits.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_digits_split_depends_on_split_seed_only():
    a = load_dataset({"source": "sklearn_digits", "split_seed": 0})
    b = load_dataset({"source": "sklearn_digits", "split_seed": 0})
    c = load_dataset({"source": "sklearn_digits", "split_seed": 1})
    assert torch.equal(a.x_train, b.x_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_npz_roundtrip_converts_nhwc_to_nchw(tmp_path, write_npz):
    path = tmp_path / "d.npz"
    write_npz(path)
    raw = np.load(path)
    d = load_dataset({"source": "npz", "path": str(path)})
    assert d.x_train.shape == (40, 3, 8, 8)
    assert torch.equal(d.x_train[5].permute(1, 2, 0), torch.from_numpy(raw["x_train"][5]))
    assert d.classes == ["c0", "c1", "c2", "c3"]
    assert describe_dataset({"source": "npz", "path": str(path)}).train_counts.tolist() == [10, 10, 10, 10]


def test_npz_missing_file_names_path_and_key(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match=r"nope\.npz.*path:"):
        load_dataset({"source": "npz", "path": str(missing)})


def test_npz_missing_array_is_named(tmp_path, write_npz):
    path = tmp_path / "d.npz"
    write_npz(path, y_test=None)
    with pytest.raises(DatasetError, match="y_test"):
        load_dataset({"source": "npz", "path": str(path)})


def test_npz_rejects_float_images(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(
        path,
        x_train=np.zeros((2, 4, 4, 3), np.float32),
        y_train=np.zeros(2),
        x_test=np.zeros((1, 4, 4, 3), np.float32),
        y_test=np.zeros(1),
    )
    with pytest.raises(DatasetError, match="uint8"):
        load_dataset({"source": "npz", "path": str(path)})


def test_tensor_dataset_scales_to_unit_interval():
    ds = TensorDataset01(torch.tensor([[[[0, 255]]]], dtype=torch.uint8), torch.tensor([1]))
    x, y = ds[0]
    assert x.tolist() == [[[0.0, 1.0]]] and int(y) == 1
