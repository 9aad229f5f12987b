"""``radiologynet download``: fetch weights into an offline bundle directory."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from radiologynet.hub import WEIGHTS_DIR_ENV, resolve_record, sha256_of
from radiologynet.weights import WeightRecord, get_weights, list_weights


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download weights into an offline bundle",
        description="Download (and convert) weights into DIR, one folder per weight, for "
                    f"machines with no internet: copy DIR there and set {WEIGHTS_DIR_ENV}=DIR.")
    parser.add_argument("names", nargs="*", help="arch.tag[@version] (default: --all)")
    parser.add_argument("--to", required=True, type=Path, help="the bundle directory")
    parser.add_argument("--all", action="store_true",
                        help="every released weight of the zoo")
    parser.set_defaults(func=run)


def bundle_weight(record: WeightRecord, to: Path) -> Path:
    """Resolve ``record`` and place it as ``to/<arch.tag@version>/`` (atomically)."""
    from radiologynet.convert import build_config
    from radiologynet.modelcard import render_model_card

    resolved = resolve_record(record)
    target = to / record.full_name
    to.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=to, prefix=".tmp-") as tmp:
        staging = Path(tmp) / record.full_name
        source_dir = resolved.file.parent
        if (source_dir / "config.json").is_file():
            shutil.copytree(source_dir, staging, ignore=shutil.ignore_patterns("*.lock", ".*"))
        else:
            staging.mkdir()
            shutil.copy2(resolved.file, staging / "model.safetensors")
            from safetensors import safe_open

            with safe_open(str(staging / "model.safetensors"), framework="pt") as fh:
                key = f"{record.architecture.classifier}.weight"
                rows = int(fh.get_slice(key).get_shape()[0])
            config = build_config(record.architecture, rows, record=record,
                                  sha256=sha256_of(staging / "model.safetensors"))
            import json

            (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            (staging / "README.md").write_text(render_model_card(config, record=record))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


def run(args: argparse.Namespace) -> int:
    if args.all:
        records = [r for r in list_weights() if r.released]
    elif args.names:
        records = [get_weights(name) for name in args.names]
    else:
        print("name at least one weight (e.g. resnet50.radiologynet) or pass --all")
        return 2
    for record in records:
        target = bundle_weight(record, args.to)
        print(f"{record.full_name}: {target}")
    print(f"Bundle ready. On the offline machine: export {WEIGHTS_DIR_ENV}={args.to.resolve()}")
    return 0
