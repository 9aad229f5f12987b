"""Draw docs/images/preparing-before-after.png: inputs before and after the RadiologyNET
preprocessing (a 16-bit GRAZPEDWRI-DX radiograph and pydicom's CT example).

Usage: ``python docs/scripts/make_preprocessing_figure.py`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from pydicom import examples  # noqa: E402

from radiologynet import io, transforms  # noqa: E402
from radiologynet._atomic import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "grazpedwri-sample" / "images"
OUT = ROOT / "docs" / "images" / "preparing-before-after.png"


def main() -> None:
    torch.manual_seed(0)
    radiograph = io.read_image(sorted(SAMPLE.glob("*.png"))[0])
    ct = io.read_image(examples.get_path("ct"))
    infer = transforms.for_weights("resnet50.radiologynet")
    train = transforms.for_weights("resnet50.radiologynet", train=True)
    lung = transforms.for_weights("resnet50.radiologynet", window="lung")
    panels = [
        (
            radiograph.pixels,
            f"GRAZPEDWRI-DX PNG\n{radiograph.pixels.dtype}, "
            f"{radiograph.shape[0]}x{radiograph.shape[1]}",
        ),
        (infer(radiograph)[0], "model input (224, letterbox)"),
        (train(radiograph)[0], "training augmentation"),
        (ct.pixels, f"CT DICOM in HU\n[{ct.pixels.min():.0f}, {ct.pixels.max():.0f}]"),
        (lung(ct)[0], "lung window, letterboxed"),
        (infer(ct)[0], "file window / min-max"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.4))
    for ax, (pixels, title) in zip(axes.ravel(), panels, strict=True):
        is_input = isinstance(pixels, torch.Tensor)  # model inputs are in [0, 1]
        ax.imshow(pixels, cmap="gray", vmin=0 if is_input else None, vmax=1 if is_input else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.text(
        0.5,
        0.01,
        "Radiograph: GRAZPEDWRI-DX (Nagy et al., Sci Data 2022), CC BY 4.0. "
        "CT: pydicom example data.",
        ha="center",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    atomic_write(OUT, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
