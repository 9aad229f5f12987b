"""The authors' torchvision wrappers, rebuilt as the key layouts of the original release
show (``reference/original-checkpoints/<Name>.tsv``), and a fabricator of checkpoints in
the original format (random weights, randomised BatchNorm statistics).

A test helper: it is what the converter must reproduce exactly.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import Tensor, nn

from radiologynet.models._registry import ARCHITECTURES, Architecture

NUM_CLASSES = 36


class ResNetWrapper(nn.Module):
    """ResNet18/34/50: ``model`` is the whole torchvision resnet with a 36-class ``fc``."""

    def __init__(self, builder: str, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.model = getattr(tvm, builder)(weights=None)
        self.model.fc = nn.Linear(self.model.fc.in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class InceptionWrapper(nn.Module):
    """InceptionV3: ``model`` is torchvision's inception_v3 (aux head kept, 1000 outputs,
    ``transform_input=False``) with a 36-class ``fc``; forward returns the main logits."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.model = tvm.inception_v3(
            weights=None, aux_logits=True, transform_input=False, init_weights=False
        )
        self.model.fc = nn.Linear(2048, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        return out.logits if isinstance(out, tuple) else out


class DenseNetWrapper(nn.Module):
    """DenseNet121: ``features`` and ``classifier`` AND the whole model again as ``model``."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        model = tvm.densenet121(weights=None)
        model.classifier = nn.Linear(1024, num_classes)
        self.features = model.features
        self.classifier = model.classifier
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.relu(self.features(x))
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class VGGWrapper(nn.Module):
    """VGG16: ``features`` and a 25088-4096-4096-36 ``classifier``, no avgpool (224 only)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = tvm.vgg16(weights=None).features
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


class EfficientNetWrapper(nn.Module):
    """EfficientNetB3/B4: ``features``, ``avgpool``, ``classifier`` = Dropout(0.2), Linear."""

    def __init__(self, builder: str, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        model = getattr(tvm, builder)(weights=None)
        self.features = model.features
        self.avgpool = model.avgpool
        width = model.classifier[1].in_features
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


class MobileNetV3Wrapper(nn.Module):
    """MobileNetV3Small/Large: ``features``, ``classifier.{0,3}`` (torchvision's head,
    36 outputs); BatchNorm eps 1e-3, momentum 0.01 as torchvision builds it."""

    def __init__(self, builder: str, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        model = getattr(tvm, builder)(weights=None)
        self.features = model.features
        self.avgpool = model.avgpool
        hidden = model.classifier[0]
        self.classifier = nn.Sequential(
            hidden, nn.Hardswish(), nn.Dropout(0.2), nn.Linear(hidden.out_features, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


#: The wrapper class name the authors saved as ``model_name``.
MODEL_NAMES = {a.name: a.original_name for a in ARCHITECTURES.values()} | {
    "mobilenet_v3_small": "mobileNetV3Small",
    "mobilenet_v3_large": "mobileNetV3Large",
}


def build_wrapper(arch: Architecture | str) -> nn.Module:
    """The authors' wrapper of ``arch`` with random weights and randomised BatchNorm
    statistics, in eval mode."""
    arch = ARCHITECTURES[arch] if isinstance(arch, str) else arch
    name = arch.name
    if name.startswith("resnet"):
        model: nn.Module = ResNetWrapper(arch.torchvision_name)
    elif name == "inception_v3":
        model = InceptionWrapper()
    elif name == "densenet121":
        model = DenseNetWrapper()
    elif name == "vgg16":
        model = VGGWrapper()
    elif name.startswith("efficientnet"):
        model = EfficientNetWrapper(arch.torchvision_name)
    else:
        model = MobileNetV3Wrapper(arch.torchvision_name)
    randomise(model)
    return model.eval()


@torch.no_grad()
def randomise(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm random affine parameters and running statistics (the default
    init leaves them at 1/0, which would hide a mis-mapped BN), and every conv/linear
    a fresh fan-in-scaled init, so a wrong mapping shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.copy_(torch.rand(n, generator=generator) * 0.4 + 0.3)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            module.num_batches_tracked.fill_(
                int(torch.randint(1, 10_000, (1,), generator=generator))
            )
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            gain = 2.0 if isinstance(module, nn.Conv2d) else 1.0
            module.weight.copy_(
                torch.randn(module.weight.shape, generator=generator) * (gain / fan_in) ** 0.5
            )
            if module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.01)


def save_original(
    model: nn.Module, path: Path, arch: Architecture | str, *, prefix: str = "", bare: bool = False
) -> Path:
    """``torch.save`` ``model``'s state dict in the original release's dict format (or bare,
    with an optional key ``prefix`` such as ``module.``)."""
    arch = ARCHITECTURES[arch] if isinstance(arch, str) else arch
    state = {prefix + k: v for k, v in model.state_dict().items()}
    if bare:
        obj: object = state
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters()][:2], lr=arch.pretrain_lr)
        obj = {
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "model_state": state,
            "model_name": MODEL_NAMES[arch.name],
            "optimizer_state": optimizer.state_dict(),
            "optimizer_name": "AdamW",
            "epoch": 42,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def make_archive(pth: Path, archive: Path) -> Path:
    """A ``<Name>.tar.gz`` holding ``<Name>.pth`` at its root, as the authors publish."""
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        tar.add(pth, arcname=pth.name)
    return archive


def read_layout(
    arch: Architecture | str, shared_dir: Path
) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """The key -> (shape, dtype) layout of the original checkpoint from the reference
    ``.tsv`` in ``shared_dir/reference/original-checkpoints`` (the ``shared_dir`` fixture;
    ``None`` when the file is absent)."""
    arch = ARCHITECTURES[arch] if isinstance(arch, str) else arch
    path = shared_dir / "reference" / "original-checkpoints" / f"{arch.original_name}.tsv"
    if not path.is_file():
        return None
    layout = {}
    for line in path.read_text().splitlines()[1:]:
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        layout[key] = (dims, dtype)
    return layout


def state_layout(state: dict[str, Tensor]) -> dict[str, tuple[tuple[int, ...], str]]:
    """The same key -> (shape, dtype) description of a state dict."""
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
