"""Sub-commands of the ``radiologynet`` CLI, resolved by name from :data:`COMMANDS`.

Each command lives in its own module, imported only when that command runs (or its
``--help`` is asked for), so ``radiologynet --help`` loads no framework. A module exposes
``register(parser)``, which receives the command's parser (named and given its one-line
help from :data:`COMMANDS`), sets its description and options, and sets ``func`` (taking
the parsed ``args`` and returning an exit code) with ``parser.set_defaults(func=...)``.

Adding a command: write ``radiologynet/cli/commands/<name>.py`` and add one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    """One sub-command: the module that implements it and its one-line help."""

    module: str
    help: str


#: Command name -> where it lives and what it does (shown by ``radiologynet --help``).
COMMANDS: dict[str, Command] = {
    "list": Command("list", "list architectures and their weights"),
    "info": Command("info", "show one weight's record"),
    "download": Command("download", "download weights into an offline bundle"),
    "convert": Command("convert", "convert an original checkpoint into a timm weights folder"),
    "publish": Command("publish", "upload a weights folder to the Hugging Face Hub"),
    "preprocess": Command(
        "preprocess", "decode a folder of images once into a memory-mapped cache"
    ),
    "finetune": Command(
        "finetune", "fine-tune one model on a benchmark or a folder of labelled images"
    ),
    "benchmark": Command("benchmark", "run the paper's protocol: models x inits x lrs x runs"),
    "report": Command("report", "analyse a sweep: tables, statistics, figures -> report.md/.html"),
    "compare": Command("compare", "run the paper's statistical tests on a sweep and print them"),
    "card-results": Command(
        "card",
        "write a sweep's downstream results into a weights folder's model card and config.json",
    ),
    "predict": Command(
        "predict", "predict a folder, DICOMDIR or CSV of images with a trained model"
    ),
    "embed": Command(
        "embed", "embed images with a backbone (pooled pre-logits features) into Parquet"
    ),
    "gradcam": Command("gradcam", "Grad-CAM heatmaps of fine-tuned classifiers (PNG + index.json)"),
    "pseudo-label": Command(
        "pseudo_label", "cluster an unlabelled DICOM archive into pseudo-labels"
    ),
    "pretrain": Command(
        "pretrain", "pretrain a zoo architecture on pseudo-labels (your own weights)"
    ),
    "pretrain-reconstruction": Command(
        "pretrain_reconstruction",
        "pretrain the vanilla U-Net to reconstruct its input (the paper's)",
    ),
    "export": Command(
        "export",
        "export a model to ONNX, TorchScript, torch.export or a MONAI bundle, verified",
    ),
    "probe": Command(
        "probe", "do these weights help on my data? frozen-feature probes of embeddings"
    ),
    "demo": Command(
        "demo", "offline end-to-end demo on generated radiographs (about a minute on CPU)"
    ),
}


def load(name: str) -> ModuleType:
    """Import and return the module of command ``name`` (a key of :data:`COMMANDS`)."""
    return importlib.import_module(f"radiologynet.cli.commands.{COMMANDS[name].module}")
