"""Fabricated models, run folders and image sources for the inference tests: weights
folders in the library's real format (tiny mobilenet_v3_small at 32 px), run folders as
``radiologynet finetune`` leaves them, and folders of PNG, suffix-less DICOM and DICOMDIR."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.uid import CTImageStorage, generate_uid

from radiologynet.models._folder import write_weights_folder
from radiologynet.models._registry import get_architecture

ARCH = "mobilenet_v3_small"
SIZE = 32


def tiny_timm_model(arch: str = ARCH, num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
    """The timm model of a zoo architecture, seeded, in eval mode."""
    spec = get_architecture(arch)
    torch.manual_seed(seed)
    return timm.create_model(spec.timm_name, num_classes=num_classes, **spec.model_args_dict).eval()


def weights_folder(
    folder: Path,
    *,
    arch: str = ARCH,
    label_names: Sequence[str] = ("ct", "mr", "xr"),
    num_classes: int | None = None,
    size: int = SIZE,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    extra: dict | None = None,
) -> Path:
    """A weights folder of a seeded tiny model (input ``size``, optional mean/std)."""
    model = tiny_timm_model(arch, num_classes or len(label_names) or 2)
    cfg: dict = {"input_size": (3, size, size)}
    if mean is not None:
        cfg.update(mean=mean, std=std)
    return write_weights_folder(
        model.state_dict(),
        folder,
        arch=arch,
        label_names=label_names,
        extra_config={"pretrained_cfg": cfg, **(extra or {})},
    )


def run_folder(root: Path, **options) -> Path:
    """A run folder as ``radiologynet finetune`` leaves it: ``result.json`` and ``model/``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "result.json").write_text(json.dumps({"status": "finished", "task": "folder"}))
    weights_folder(root / "model", **options)
    return root


def png(path: Path, seed: int = 0, shape: tuple[int, int] = (20, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
    return path


def dicom(path: Path, seed: int = 0, **tags: object) -> Path:
    """A real CT DICOM file (any name, no suffix needed) with ``tags``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID, ds.StudyID = "P1", "S1"
    ds.Modality = "CT"
    ds.StudyDate, ds.StudyTime, ds.SeriesNumber, ds.InstanceNumber = "20240101", "1200", 1, 1
    rng = np.random.default_rng(seed)
    ds.set_pixel_data(rng.integers(0, 4000, size=(24, 20), dtype=np.uint16), "MONOCHROME2", 16)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicomdir(folder: Path, files: Sequence[Path]) -> Path:
    """``folder/DICOMDIR`` indexing ``files`` (copied into the file-set by pydicom)."""
    import pydicom

    fs = FileSet()
    for file in files:
        fs.add(pydicom.dcmread(file))
    fs.write(folder)
    return folder / "DICOMDIR"


def mixed_folder(root: Path) -> dict[str, Path]:
    """``root`` holding two PNGs, a suffix-less DICOM in a subfolder, a hidden file and a
    broken PNG: what a user's export looks like."""
    files = {
        "a": png(root / "a.png", 1),
        "b": png(root / "sub" / "b.png", 2),
        "c": dicom(root / "sub" / "deeper" / "IM0001", 3, PatientSex="M"),
        "broken": root / "broken.png",
    }
    files["broken"].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / ".hidden.png").write_bytes(b"junk")
    return files
