"""``radiologynet export WEIGHTS --format onnx|torchscript|pt2|monai-bundle --out PATH``."""

from __future__ import annotations

import argparse
from pathlib import Path

#: The formats, with the MONAI bundle (a folder) beside the three single files.
FORMATS = ("onnx", "torchscript", "pt2", "monai-bundle")


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``export`` parser: description, options and ``func``."""
    parser.description = (
        "Export a model to ONNX, TorchScript, a torch.export program (pt2) or a MONAI "
        "bundle. The model is built with timm's exportable=True; the file carries its "
        "preprocessing, class names, task kind, weights tag and sha256 (ONNX "
        "metadata_props 'radiologynet', an extra file 'radiologynet.json' otherwise), has "
        "a dynamic batch axis, and is verified: run on real preprocessed images (the "
        "shipped samples, or --verify-data) and compared with PyTorch at rtol 1e-3 / atol "
        "1e-5. A file that differs is not written."
    )
    parser.add_argument(
        "weights",
        help="a run folder, its model/ folder, a weights folder, or a zoo name "
        "(resnet50.radiologynet) with --num-classes",
    )
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    parser.add_argument(
        "--out", type=Path, required=True, help="the file to write (the folder, for a bundle)"
    )
    parser.add_argument(
        "--verify-data",
        type=Path,
        default=None,
        metavar="PATH",
        help="a folder (searched recursively) or file of images to verify on "
        "(default: the library's sample DICOM images)",
    )
    parser.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="put channel expansion and mean/std in the graph: the input is a "
        "(B, 1, H, W) grey image at the model's size",
    )
    parser.add_argument(
        "--input-dtype",
        choices=("float32", "uint8"),
        default="float32",
        help="with --with-preprocessing: float32 in [0, 1] (default) or uint8 0..255",
    )
    parser.add_argument(
        "--dynamo",
        action="store_true",
        help="ONNX: use the torch.export-based exporter (default: the TorchScript-based one)",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; >= 17)")
    parser.add_argument("--arch", default=None, help="the architecture, for a bare weights file")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="a new head of this size (zoo names)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, verify and print the verification and what the file carries."""
    if args.format == "monai-bundle":
        from radiologynet.inference.monai_bundle import write_bundle

        result = write_bundle(
            args.weights,
            args.out,
            arch=args.arch,
            num_classes=args.num_classes,
            verify_data=args.verify_data,
        )
    else:
        from radiologynet.inference.export import export

        result = export(
            args.weights,
            args.out,
            format=args.format,
            arch=args.arch,
            num_classes=args.num_classes,
            verify_data=args.verify_data,
            preprocessing_in_graph=args.with_preprocessing,
            input_dtype=args.input_dtype,
            opset=args.opset,
            dynamo=args.dynamo,
        )
    meta = result.metadata
    print(f"wrote {result.path} ({args.format})")
    print(f"  {result.verification.summary()}")
    print(f"  weights: {meta.get('weights')} sha256 {meta.get('sha256') or '-'}")
    print(
        f"  input:   {' x '.join(str(v) for v in meta['input']['shape'])} {meta['input']['dtype']}"
    )
    labels = meta.get("label_names") or []
    print(f"  outputs: {meta.get('task_kind')}, {len(labels)} classes: {', '.join(labels[:8])}")
    return 0
