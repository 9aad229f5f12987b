"""``radiologynet convert SRC --out DIR``: an original checkpoint to a timm weights folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from radiologynet.models._convert import convert_checkpoint
from radiologynet.models._folder import read_weights_folder


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Convert one of the authors' checkpoints (<Name>.pth or <Name>.tar.gz, "
        "the original dict or a bare state dict, with or without 'module.') "
        "into a folder holding config.json, model.safetensors and a README.md "
        "model card, which timm loads with 'local-dir:DIR'."
    )
    parser.add_argument("src", type=Path, help="the checkpoint (.pth, .pt, .tar.gz, .tgz, .tar)")
    parser.add_argument("--out", type=Path, required=True, help="the folder to write")
    parser.add_argument(
        "--tag",
        default=None,
        help="the weight this checkpoint is, for its metadata and model card "
        "(default: detected from the head: 36 classes radiologynet, "
        "1000 classes imagenet, otherwise none)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = convert_checkpoint(args.src, args.out, tag=args.tag)
    config, weights = read_weights_folder(out)
    meta = (config or {}).get("radiologynet", {})
    print(f"wrote {out}")
    print(
        f"  architecture: {meta.get('arch')} (timm {config['architecture']}, "
        f"{config['num_classes']} classes)"
    )
    print(f"  weight:       {meta.get('weights') or 'no zoo record (head size unknown)'}")
    print(f"  weights:      {weights.name} sha256 {meta.get('sha256')}")
    print(f"  load with:    timm.create_model('local-dir:{out}', pretrained=True)")
    return 0
