"""A synthetic, unlabelled DICOM "archive" whose true groups are known.

Each group is one kind of study a hospital archive holds (a head CT, a knee MR, a chest
radiograph, ...): its own modality, body part, descriptions, acquisition parameters and a
distinctive image shape. Sizes vary within a group, some files can miss tags, and every
file carries invented patient names, IDs and dates, so tests can prove that nothing
downstream leaks them. Used by the tests and by ``radiologynet demo --full``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radiologynet._atomic import atomic_write
from radiologynet.errors import InvalidArgumentError

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # secondary capture
}

Painter = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class SyntheticGroup:
    """One kind of study: its header values and how its pixels look.

    Attributes:
        name: the group's id (the ground truth a clustering should recover).
        modality / body_part: ``Modality`` / ``BodyPartExamined``. A tuple cycles through
            its values file by file (a deliberately mixed group, like scanned documents
            filed under whatever study they came with).
        study_description / series_description / protocol: the free-text header fields.
        acquisition: header keyword -> value (KVP, SliceThickness, RepetitionTime, ...).
        painter: draws the image on a grid of normalised coordinates ``(y, x)`` in [-1, 1].
        base_size: (rows, columns) before the per-file size jitter.
        manufacturer: ``Manufacturer`` (default: a vendor per modality).
    """

    name: str
    modality: str | tuple[str, ...]
    body_part: str | tuple[str, ...]
    study_description: str
    series_description: str
    protocol: str
    acquisition: dict[str, float] = field(default_factory=dict)
    painter: Painter | None = None
    base_size: tuple[int, int] = (64, 64)
    manufacturer: str = ""


def _ellipse(
    y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float
) -> np.ndarray:
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _head_ct(y, x, rng):  # skull ring around brain, HU
    img = np.full(y.shape, -1000.0)
    img[_ellipse(y, x, 0, 0, 0.85, 0.7)] = 1200.0
    img[_ellipse(y, x, 0, 0, 0.75, 0.6)] = 35.0
    img[_ellipse(y, x, 0, 0.0, 0.2, 0.08)] = 5.0  # ventricles
    return img + rng.normal(0, 8, y.shape)


def _chest_ct(y, x, rng):  # wide body, two dark lungs, spine
    img = np.full(y.shape, -1000.0)
    img[_ellipse(y, x, 0.05, 0, 0.6, 0.95)] = 40.0
    img[_ellipse(y, x, 0, -0.42, 0.45, 0.3)] = -850.0
    img[_ellipse(y, x, 0, 0.42, 0.45, 0.3)] = -850.0
    img[_ellipse(y, x, 0.5, 0, 0.1, 0.1)] = 700.0
    return img + rng.normal(0, 10, y.shape)


def _brain_mr(y, x, rng):  # bright cortex, grey interior, no skull signal
    img = np.zeros(y.shape)
    img[_ellipse(y, x, 0, 0, 0.8, 0.65)] = 900.0
    img[_ellipse(y, x, 0, 0, 0.65, 0.5)] = 500.0
    img[_ellipse(y, x, -0.1, 0, 0.15, 0.25)] = 1400.0
    return np.clip(img + rng.normal(0, 20, y.shape), 0, None)


def _knee_mr(y, x, rng):  # two bones meeting at a joint line
    img = np.full(y.shape, 60.0)
    img[(np.abs(x) < 0.35) & (y < -0.05)] = 1100.0
    img[(np.abs(x) < 0.3) & (y > 0.05)] = 1000.0
    img[np.abs(y) <= 0.05] = 300.0
    return np.clip(img + rng.normal(0, 20, y.shape), 0, None)


def _chest_cr(y, x, rng):  # radiograph: bright body, dark lungs, tall image
    img = np.full(y.shape, 300.0)
    img[_ellipse(y, x, 0.05, 0, 0.95, 0.9)] = 2500.0
    img[_ellipse(y, x, -0.1, -0.42, 0.6, 0.3)] = 900.0
    img[_ellipse(y, x, -0.1, 0.42, 0.6, 0.3)] = 900.0
    return np.clip(img + rng.normal(0, 30, y.shape), 0, 4095)


def _hand_dx(y, x, rng):  # five finger bones on a dark background, wide image
    img = np.full(y.shape, 150.0)
    for cx in (-0.6, -0.3, 0.0, 0.3, 0.6):
        img[(np.abs(x - cx) < 0.07) & (y < 0.2)] = 3000.0
    img[_ellipse(y, x, 0.55, 0, 0.35, 0.75)] = 2800.0
    return np.clip(img + rng.normal(0, 30, y.shape), 0, 4095)


def _document(y, x, rng):  # a scanned request form: white page, dark text lines
    img = np.full(y.shape, 3800.0)
    rows = (np.round((y + 1) * 8) % 2 == 0) & (np.abs(x) < 0.8) & (y > -0.85)
    img[rows] = 400.0
    return np.clip(img + rng.normal(0, 15, y.shape), 0, 4095)


#: The default archive: six coherent kinds of study.
DEFAULT_GROUPS: tuple[SyntheticGroup, ...] = (
    SyntheticGroup(
        "ct_head",
        "CT",
        "HEAD",
        "CT HEAD W/O CONTRAST",
        "AXIAL 5MM BRAIN",
        "HEAD ROUTINE",
        {"KVP": 120.0, "SliceThickness": 5.0, "PixelSpacing": 0.45, "ExposureTime": 1000.0},
        _head_ct,
        (64, 64),
    ),
    SyntheticGroup(
        "ct_chest",
        "CT",
        "CHEST",
        "CT THORAX WITH CONTRAST",
        "LUNG 1.25MM",
        "THORAX ANGIO",
        {"KVP": 100.0, "SliceThickness": 1.25, "PixelSpacing": 0.7, "ExposureTime": 600.0},
        _chest_ct,
        (64, 64),
    ),
    SyntheticGroup(
        "mr_brain",
        "MR",
        "BRAIN",
        "MRI BRAIN",
        "T1 SAG MPRAGE",
        "BRAIN T1",
        {
            "RepetitionTime": 2300.0,
            "EchoTime": 2.98,
            "MagneticFieldStrength": 3.0,
            "SliceThickness": 1.0,
            "PixelSpacing": 1.0,
        },
        _brain_mr,
        (64, 56),
    ),
    SyntheticGroup(
        "mr_knee",
        "MR",
        "KNEE",
        "MRI KNEE RIGHT",
        "PD FS COR",
        "KNEE PD",
        {
            "RepetitionTime": 3000.0,
            "EchoTime": 30.0,
            "MagneticFieldStrength": 1.5,
            "SliceThickness": 3.0,
            "PixelSpacing": 0.35,
        },
        _knee_mr,
        (56, 56),
    ),
    SyntheticGroup(
        "cr_chest",
        "CR",
        "CHEST",
        "XR CHEST PA",
        "PA",
        "CHEST PA",
        {"KVP": 125.0, "ExposureTime": 10.0, "PixelSpacing": 0.15},
        _chest_cr,
        (72, 60),
    ),
    SyntheticGroup(
        "dx_hand",
        "DX",
        "HAND",
        "XR HAND LEFT 2 VIEWS",
        "HAND AP",
        "HAND",
        {"KVP": 55.0, "ExposureTime": 8.0, "PixelSpacing": 0.1},
        _hand_dx,
        (48, 64),
    ),
)

#: A deliberately incoherent group: scanned request forms filed under whatever study they
#: came with, so modality and body part vary while everything else looks the same.
MIXED_GROUP = SyntheticGroup(
    "documents",
    ("CT", "MR", "CR", "DX"),
    ("HEAD", "CHEST", "KNEE", "HAND"),
    "SCANNED DOCUMENT",
    "REQUEST FORM",
    "SCAN",
    {},
    _document,
    (64, 48),
    manufacturer="DOCUMENT SCANNER CO",
)
_VENDORS = {"CT": "SIEMENS", "MR": "PHILIPS", "CR": "AGFA", "DX": "CARESTREAM"}

_FIRST = ("ANA", "IVAN", "MARKO", "PETRA", "LUKA", "MAJA", "JOSIP", "IVA")
_LAST = ("HORVAT", "KOVACEVIC", "BABIC", "MARIC", "JURIC", "NOVAK", "KNEZEVIC", "VUKOVIC")


@dataclass(frozen=True)
class SyntheticImage:
    """One written file and its truth (never read by the pseudo-labeller)."""

    path: str  # relative to the archive root, POSIX separators
    group: str
    modality: str
    body_part: str
    patient_name: str
    patient_id: str
    birth_date: str
    study_date: str


def write_synthetic_archive(
    root: str | os.PathLike[str],
    n_images: int = 60,
    *,
    groups: Sequence[SyntheticGroup] = DEFAULT_GROUPS,
    include_mixed: bool = False,
    size_jitter: float = 0.25,
    missing_tag_fraction: float = 0.0,
    n_unreadable: int = 0,
    seed: int = 0,
) -> list[SyntheticImage]:
    """Write ``n_images`` DICOM files (spread evenly over the groups) under ``root``.

    Args:
        root: the archive folder (created; files go to ``study_NNNN/IMNNNN.dcm``).
        n_images: how many DICOM files to write in total.
        groups: the kinds of study; :data:`DEFAULT_GROUPS` by default.
        include_mixed: add :data:`MIXED_GROUP` (for the heterogeneity filter).
        size_jitter: each side is scaled by a random factor in ``1 +- size_jitter``.
        missing_tag_fraction: share of files that lose BodyPartExamined, ProtocolName and
            one acquisition parameter (as real archives do).
        n_unreadable: extra files that are not DICOM (a truncated file, a text note).
        seed: makes the archive reproducible.

    Returns:
        The truth per DICOM file written, in writing order.
    """
    all_groups = list(groups) + ([MIXED_GROUP] if include_mixed else [])
    if n_images < len(all_groups):
        raise InvalidArgumentError(
            f"n_images={n_images} is fewer than the {len(all_groups)} groups; "
            "ask for at least one image per group."
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth: list[SyntheticImage] = []
    for i in range(n_images):
        group = all_groups[i % len(all_groups)]
        rel = f"study_{i // 2:04d}/IM{i:04d}.dcm"
        missing = rng.random() < missing_tag_fraction
        image, ds = _make_dataset(
            group, rng, size_jitter, missing, index=i, occurrence=i // len(all_groups)
        )
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dicom(ds, path)
        truth.append(
            SyntheticImage(
                path=rel,
                group=group.name,
                modality=str(ds.Modality),
                body_part=str(getattr(ds, "BodyPartExamined", "")),
                patient_name=str(ds.PatientName),
                patient_id=str(ds.PatientID),
                birth_date=str(ds.PatientBirthDate),
                study_date=str(ds.StudyDate),
            )
        )
        del image
    for j in range(n_unreadable):
        bad = root / f"broken_{j:02d}" / ("IM9999.dcm" if j % 2 == 0 else "NOTES.txt")
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(b"\x00" * 64 + b"DICM\x02\x00" if j % 2 == 0 else b"not an image\n")
    return truth


def _pick(value: str | tuple[str, ...], occurrence: int) -> str:
    return value if isinstance(value, str) else value[occurrence % len(value)]


def _make_dataset(
    group: SyntheticGroup,
    rng: np.random.Generator,
    jitter: float,
    missing: bool,
    index: int,
    occurrence: int,
) -> tuple[np.ndarray, Dataset]:
    rows, cols = (
        max(16, int(round(s * (1 + rng.uniform(-jitter, jitter))))) for s in group.base_size
    )
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    painter = group.painter or _document
    values = painter(y, x, rng)
    modality = _pick(group.modality, occurrence)
    body_part = _pick(group.body_part, occurrence)
    ds = _patient_study(modality, rng, index)
    ds.StudyDescription = group.study_description
    ds.SeriesDescription = group.series_description
    ds.Manufacturer = group.manufacturer or _VENDORS.get(modality, "SYNTHETIC")
    if not missing:
        ds.BodyPartExamined = body_part
        ds.ProtocolName = group.protocol
    _set_acquisition(ds, group, rng, missing)
    stored = _set_pixels(ds, values, group, body_part)
    return stored, ds


def _patient_study(modality: str, rng: np.random.Generator, index: int) -> Dataset:
    """A dataset with new UIDs and invented patient and study details (the PHI that
    pseudo-labelling must never write out)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS.get(modality, SOP_CLASS["OT"])
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = f"{rng.choice(_LAST)}^{rng.choice(_FIRST)}^{index:04d}"
    ds.PatientID = f"PID{rng.integers(10**6, 10**7)}"
    ds.PatientBirthDate = (
        f"{rng.integers(1930, 2015)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    )
    ds.PatientSex = str(rng.choice(["M", "F"]))
    ds.StudyDate = f"{rng.integers(2008, 2018)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC{rng.integers(10**5, 10**6)}"
    ds.InstitutionName = "CLINICAL HOSPITAL CENTRE EXAMPLE"
    ds.ReferringPhysicianName = "DR^REFERRER"
    ds.Modality = modality
    return ds


def _set_acquisition(
    ds: Dataset, group: SyntheticGroup, rng: np.random.Generator, missing: bool
) -> None:
    """The group's acquisition tags with 2 % noise (one left out when ``missing``)."""
    acquisition = dict(group.acquisition)
    if missing and acquisition:
        acquisition.pop(sorted(acquisition)[0])
    for keyword, value in acquisition.items():
        noisy = value * (1 + rng.normal(0, 0.02))
        if keyword == "PixelSpacing":
            ds.PixelSpacing = [f"{noisy:.4f}", f"{noisy:.4f}"]
        elif keyword == "ExposureTime":  # VR IS: an integer string
            ds.ExposureTime = str(int(round(noisy)))
        else:
            setattr(ds, keyword, f"{noisy:.3f}")


def _set_pixels(
    ds: Dataset, values: np.ndarray, group: SyntheticGroup, body_part: str
) -> np.ndarray:
    """Store ``values`` as the image (CT in Hounsfield units with a rescale and a window,
    others as 12- or 16-bit unsigned); returns the stored pixels."""
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    hounsfield = group.modality == "CT"  # a mixed group stores scanner-independent pixels
    ds.BitsStored = 16 if hounsfield or group.modality == "MR" else 12
    ds.HighBit = ds.BitsStored - 1
    if hounsfield:
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        stored = np.clip(values + 1024, -32768, 32767).astype(np.int16)
        ds.WindowCenter, ds.WindowWidth = ("40", "80") if body_part == "HEAD" else ("-600", "1500")
    else:
        ds.PixelRepresentation = 0
        stored = np.clip(values, 0, 2**ds.BitsStored - 1).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    return stored


def save_dicom(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` as a DICOM file, atomically (a reader never sees half a file)."""
    atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
