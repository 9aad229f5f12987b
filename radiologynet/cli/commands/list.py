"""``radiologynet list``: the architectures and their weights."""

from __future__ import annotations

import argparse

from radiologynet.models._registry import ARCHITECTURES
from radiologynet.models._weights import list_weights


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = "List the zoo's architectures and weight tags."
    parser.add_argument("arch", nargs="?", help="only this architecture's weights")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.arch:
        for record in list_weights(args.arch):
            print(record.summary())
        return 0
    print(f"{'architecture':20s} {'timm model':24s} {'input':>5s}  weights")
    for arch in ARCHITECTURES.values():
        tags = ", ".join(r.tag for r in list_weights(arch.name))
        print(f"{arch.name:20s} {arch.timm_name:24s} {arch.input_size:5d}  {tags}")
    return 0
