"""The sample images the library ships: six small DICOM files, one per kind of study (head
and chest CT in Hounsfield units with their windows, brain and knee MR, a chest CR and a
hand DX, of different aspect ratios), for checks that need real decoded images without a
download (``radiologynet export`` verifies every exported file on them).

They are :func:`radiologynet.demo.synthetic_archive.write_synthetic_archive` ``(root, 6,
seed=21)`` with the invented patient details blanked (tests/test_sample_images.py
regenerates them and compares the pixels).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The shipped sample files, in the synthetic archive's group order.
SAMPLE_NAMES = ("ct_head", "ct_chest", "mr_brain", "mr_knee", "cr_chest", "dx_hand")


def sample_image_paths() -> list[Path]:
    """The shipped sample DICOM files, as paths (in :data:`SAMPLE_NAMES` order)."""
    folder = Path(str(resources.files("radiologynet") / "resources" / "samples"))
    return [folder / f"{name}.dcm" for name in SAMPLE_NAMES]
