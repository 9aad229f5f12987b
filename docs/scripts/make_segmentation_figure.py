"""Draw docs/images/segmentation-example.png: a synthetic CT slice, its nodule mask (the
paper's method) and the prediction of a vanilla U-Net trained briefly on CPU.

Usage: ``python docs/scripts/make_segmentation_figure.py`` from the repository root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from radiologynet._atomic import atomic_write  # noqa: E402
from radiologynet.data.benchmarks.luna16 import LUNA16  # noqa: E402
from radiologynet.demo.synthetic_luna16 import make_synthetic_luna16  # noqa: E402
from radiologynet.models.unet import create_unet, predict_mask
from radiologynet.protocol.tasks.luna16 import luna_batch_transform  # noqa: E402
from radiologynet.train.losses import BCEDiceLoss
from radiologynet.train.segmentation_metrics import dice_per_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "segmentation-example.png"


def train_small_unet(data: LUNA16, steps: int = 100, seed: int = 0) -> torch.nn.Module:
    """A vanilla U-Net trained on the training split's nodule slices (random 48 x 48
    crops with the paper's LUNA16 augmentation: affine transform and 25 HU noise) with
    BCE + Dice."""
    torch.manual_seed(seed)
    slices = data.slices("train")
    images = torch.stack([slices[i][0] for i in range(len(slices))])
    masks = torch.stack([slices[i][1] for i in range(len(slices))])
    transform = luna_batch_transform(in_chans=1, crop=48)
    model = create_unet(None, in_chans=1, num_classes=1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = BCEDiceLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(images), (16,), generator=generator)
        x, y = transform(images[pick], masks[pick], train=True, generator=generator)
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_luna16(tmp, num_series=12, seed=1)
        data = LUNA16(tmp, cache_dir=Path(tmp) / "cache", progress=False)
        model = train_small_unet(data)
        image, mask = data.slices("val")[0]
        prediction = predict_mask(model, image[None])[0]
    dice = dice_per_image(prediction[None], mask[None]).item()
    panels = [
        (image[0], "CT slice (HU scaled to [0, 1])", None),
        (image[0], "nodule mask (paper's method)", mask[0]),
        (image[0], f"U-Net prediction (Dice {dice:.2f})", prediction[0].float()),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for ax, (pixels, title, overlay) in zip(axes, panels, strict=True):
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=1)
        if overlay is not None:
            ax.imshow(overlay.numpy(), cmap="autumn", alpha=0.5 * overlay.numpy())
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.text(
        0.5,
        0.01,
        "Synthetic CT (radiologynet.demo.synthetic_luna16); vanilla U-Net, "
        "100 steps (BCE + Dice) on CPU.",
        ha="center",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    atomic_write(OUT, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    print(f"wrote {OUT} (Dice {dice:.3f})")


if __name__ == "__main__":
    main()
