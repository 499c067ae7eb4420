"""Torchvision sources (CIFAR-10/100, Imagenette, ImageFolder) on tiny files written in each real on-disk format.

No network: every dataset is built in ``tmp_path``. CIFAR files are Python-2-style pickles like the
originals; torchvision checks their md5 against the real archives' files, so the tests patch the
expected checksums (class attributes of torchvision's CIFAR classes) with those of the files they wrote.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, CIFAR100

from unpoison.data import DatasetError, describe_dataset, load_dataset


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), as in the original CIFAR pickles.

    Loaded with ``encoding="latin1"`` (as torchvision does) they become ``str``; with ``encoding="bytes"``
    they stay ``bytes`` (the ``b"data"`` keys users see when they unpickle the real files by hand).
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump_py2(obj: dict, path: Path) -> str:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_batch(rng: np.random.Generator, n: int, classes: int, label_key: bytes) -> dict:
    """One batch dict as in the real files: uint8 N×3072 rows (1024 R, then G, then B; each row-major 32×32)."""
    batch = {
        b"batch_label": b"tiny batch",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [v // 5 for v in batch[label_key]]
    return batch


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture()
def cifar10_root(tmp_path, monkeypatch) -> tuple[Path, dict[str, dict]]:
    """``root/cifar-10-batches-py/`` with 5 train batches of 4 images, a test batch of 3, and batches.meta."""
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {f"data_batch_{i}": _cifar_batch(rng, 4, 10, b"labels") for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(rng, 3, 10, b"labels")
    md5 = {name: _dump_py2(batch, folder / name) for name, batch in batches.items()}
    meta = {b"num_cases_per_batch": 4, b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}
    meta_md5 = _dump_py2(meta, folder / "batches.meta")
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})
    return tmp_path / "cifar", batches


@pytest.fixture()
def cifar100_root(tmp_path, monkeypatch) -> tuple[Path, dict[str, dict]]:
    """``root/cifar-100-python/`` with train (6 images), test (2) and meta over 100 fine classes."""
    folder = tmp_path / "c100" / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {"train": _cifar_batch(rng, 6, 100, b"fine_labels"), "test": _cifar_batch(rng, 2, 100, b"fine_labels")}
    md5 = {name: _dump_py2(batch, folder / name) for name, batch in batches.items()}
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    meta_md5 = _dump_py2(meta, folder / "meta")
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": meta_md5})
    return tmp_path / "c100", batches


def test_cifar_pickles_have_the_real_files_bytes_keys(cifar10_root):
    root, _ = cifar10_root
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"} and raw[b"data"].dtype == np.uint8


def test_cifar10_loads_planes_into_nchw(cifar10_root):
    root, batches = cifar10_root
    d = load_dataset({"source": "cifar10", "root": str(root), "download": False})
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    assert d.x_train.dtype == torch.uint8 and d.y_train.dtype == torch.int64
    assert d.classes == CIFAR10_NAMES
    # image 5 = batch 2 (4 images each), row 1; the byte at plane c, row h, column w sits at c*1024 + h*32 + w
    row = batches["data_batch_2"][b"data"][1]
    for c, h, w in [(0, 0, 0), (1, 5, 17), (2, 31, 30)]:
        assert int(d.x_train[5, c, h, w]) == int(row[c * 1024 + h * 32 + w])
    labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert d.y_train.tolist() == labels and d.y_test.tolist() == batches["test_batch"][b"labels"]
    assert torch.equal(d.x_test, torch.from_numpy(batches["test_batch"][b"data"].reshape(3, 3, 32, 32)))
    counts = describe_dataset({"source": "cifar10", "root": str(root)}).train_counts
    assert counts.tolist() == np.bincount(labels, minlength=10).tolist()


def test_cifar100_uses_fine_labels(cifar100_root):
    root, batches = cifar100_root
    d = load_dataset({"source": "cifar100", "root": str(root)})
    assert d.x_train.shape == (6, 3, 32, 32) and d.num_classes == 100 and d.classes[7] == "fine7"
    assert d.y_train.tolist() == batches["train"][b"fine_labels"]
    assert torch.equal(d.x_train, torch.from_numpy(batches["train"][b"data"].reshape(6, 3, 32, 32)))
    counts = describe_dataset({"source": "cifar100", "root": str(root)}).train_counts
    assert (
        len(counts) == 100 and counts.tolist() == np.bincount(batches["train"][b"fine_labels"], minlength=100).tolist()
    )


def test_cifar_md5_mismatch_is_reported_as_corrupted(cifar10_root):
    root, _ = cifar10_root
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match=r"md5.*download: true"):
        load_dataset({"source": "cifar10", "root": str(root)})
    assert describe_dataset({"source": "cifar10", "root": str(root), "download": True}).train_counts is None


def _solid(rgb: tuple[int, int, int], size: tuple[int, int] = (20, 16)) -> Image.Image:
    return Image.new("RGB", size, rgb)


IMAGENETTE_WNIDS = {"n01440764": "tench", "n02102040": "English springer", "n03888257": "parachute"}
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


@pytest.fixture()
def imagenette_root(tmp_path) -> Path:
    """``root/imagenette2-160/{train,val}/<wnid>/*.JPEG`` as torchvision's Imagenette reads it (3 of 10 classes)."""
    for split, per_class in (("train", [3, 1, 2]), ("val", [1, 1, 1])):
        for (wnid, _), colour, n in zip(IMAGENETTE_WNIDS.items(), COLOURS, per_class):
            folder = tmp_path / "imagenette2-160" / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                _solid(colour).save(folder / f"{wnid}_{i}.JPEG", quality=95)
    return tmp_path


def test_imagenette_decodes_resizes_and_crops(imagenette_root):
    d = load_dataset({"source": "imagenette", "root": str(imagenette_root), "image_size": 8})
    assert d.x_train.shape == (6, 3, 8, 8) and d.x_test.shape == (3, 3, 8, 8) and d.x_train.dtype == torch.uint8
    assert d.classes == list(IMAGENETTE_WNIDS.values())
    assert d.y_train.tolist() == [0, 0, 0, 1, 2, 2] and d.y_test.tolist() == [0, 1, 2]
    for x, y in zip(d.x_train, d.y_train):  # solid colours survive JPEG and resizing up to a few levels
        expected = torch.tensor(COLOURS[int(y)], dtype=torch.int16).view(3, 1, 1)
        assert (x.to(torch.int16) - expected).abs().max() <= 4
    counts = describe_dataset({"source": "imagenette", "root": str(imagenette_root), "size": 160}).train_counts
    assert counts.tolist() == [3, 1, 2]


def _write_png_tree(root: Path, layout: dict[str, dict[str, int]]) -> None:
    for split, classes in layout.items():
        for name, n in classes.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                _striped(i).save(root / split / name / f"{i}.png")


def _striped(i: int) -> Image.Image:
    """8×32 image: columns 0–7 red, 8–23 a colour depending on ``i``, 24–31 blue (the crop keeps only the middle)."""
    a = np.zeros((8, 32, 3), np.uint8)
    a[:, :8] = (255, 0, 0)
    a[:, 8:24] = (10 * i, 100, 50)
    a[:, 24:] = (0, 0, 255)
    return Image.fromarray(a)


def test_imagefolder_center_crops_and_aligns_test_classes(tmp_path):
    _write_png_tree(tmp_path, {"train": {"cat": 2, "dog": 3, "emu": 1}, "test": {"dog": 2, "emu": 1}})
    d = load_dataset({"source": "imagefolder", "root": str(tmp_path), "image_size": 4})
    assert d.x_train.shape == (6, 3, 4, 4) and d.classes == ["cat", "dog", "emu"]
    assert d.y_train.tolist() == [0, 0, 1, 1, 1, 2]
    assert d.y_test.tolist() == [1, 1, 2]  # test/ lacks "cat": labels follow train/'s class order
    # 8×32 → 4×16 → centre 4×4 = source columns 8..23 only (lossless PNG: exact values)
    for k, i in enumerate([0, 1, 0, 1, 2, 0]):
        assert d.x_train[k].flatten(1).unique(dim=1).tolist() == [[10 * i], [100], [50]]
    assert describe_dataset({"source": "imagefolder", "root": str(tmp_path)}).train_counts.tolist() == [2, 3, 1]


def test_imagefolder_rejects_test_class_missing_from_train(tmp_path):
    _write_png_tree(tmp_path, {"train": {"cat": 1}, "val": {"cat": 1, "yak": 1}})
    with pytest.raises(DatasetError, match="yak"):
        load_dataset({"source": "imagefolder", "root": str(tmp_path), "image_size": 4})


@pytest.mark.parametrize(
    "source, looked_at",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("imagenette", "imagenette2-160"),
        ("imagefolder", ""),
    ],
)
def test_missing_dataset_names_path_and_download(tmp_path, source, looked_at):
    root = tmp_path / "nowhere"
    settings = {"source": source, "root": str(root), "download": False}
    expected = str(root / looked_at) if looked_at else str(root)
    for call in (load_dataset, describe_dataset):
        with pytest.raises(DatasetError) as err:
            call(settings)
        assert expected in str(err.value) and "download" in str(err.value) and "root:" in str(err.value)


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "imagenette"])
def test_missing_dataset_with_download_is_counted_later(tmp_path, source):
    assert describe_dataset({"source": source, "root": str(tmp_path), "download": True}).train_counts is None


def test_imagefolder_refuses_download(tmp_path):
    with pytest.raises(DatasetError, match="download"):
        _ = describe_dataset({"source": "imagefolder", "root": str(tmp_path), "download": True}).train_counts


def test_root_is_required():
    with pytest.raises(DatasetError, match="root:"):
        load_dataset({"source": "cifar10"})


def test_partial_imagenette_copy_is_reported_even_with_download(imagenette_root):
    import shutil

    shutil.rmtree(imagenette_root / "imagenette2-160" / "val")
    with pytest.raises(DatasetError, match=r"incomplete.*val/"):
        _ = describe_dataset({"source": "imagenette", "root": str(imagenette_root), "download": True}).train_counts
