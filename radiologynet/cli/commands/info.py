"""``radiologynet info arch.tag``: everything a weight record knows."""

from __future__ import annotations

import argparse

from radiologynet.models._weights import WeightRecord, get_weights


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show where a weight lives, what it expects and what the paper measured with it."
    )
    parser.add_argument("name", help="arch.tag[@version], e.g. resnet50.radiologynet")
    parser.set_defaults(func=run)


def describe(record: WeightRecord) -> str:
    """A human-readable multi-line description of a weight record."""
    pre = record.preprocessing
    size = f"{pre.input_size}x{pre.input_size}"
    geometry = (
        f"{size}, letterbox ({pre.interpolation}, centred zero padding)"
        if pre.letterbox
        else f"{size}, shorter side resized to {pre.input_size} / {pre.crop_pct:g} px "
        f"({pre.interpolation}), centre crop"
    )
    channels = ", grayscale repeated to 3 channels" if pre.grayscale_to_rgb else ""
    norm = (
        f"mean {pre.mean}, std {pre.std}"
        if pre.mean is not None
        else "none (intensities scaled to [0, 1] only)"
    )
    lines = [
        record.full_name,
        f"  {record.description}",
        f"  status:        {record.status}",
        f"  hub:           {record.hub_repo_id}"
        + (f"@{record.hub_revision}" if record.hub_revision else ""),
        f"  sha256:        {record.sha256 or '(recorded in the cache on first use)'}",
        f"  source:        {record.source_url or '-'}"
        + (
            f" (sha256 {record.source_sha256}, {record.source_size} bytes)"
            if record.source_sha256
            else f" (sha256 starts with {record.source_sha256_prefix}, as its name says)"
            if record.source_sha256_prefix
            else " (no published checksum)"
            if record.source_url
            else ""
        ),
        *(
            [f"  timm copy:     hf-hub:{record.timm_hub_id} (tried first)"]
            if record.timm_hub_id
            else []
        ),
        *(
            [
                f"  torchvision:   {record.torchvision_weights} (torchvision 0.15.2's DEFAULT, as "
                "the paper used)"
            ]
            if record.torchvision_weights
            else []
        ),
        f"  input:         {geometry}{channels}",
        f"  normalisation: {norm}",
        f"  classes:       {record.num_classes}",
        f"  modalities:    {', '.join(record.modalities) or '-'}",
        f"  training data: {record.training_data}",
        f"  licence:       {record.license}"
        + (f" ({record.license_note})" if record.license_note else ""),
        f"  paper:         {record.paper}",
    ]
    if record.results:
        lines.append("  paper results (Tables 2-6):")
        for r in record.results:
            lines.append(
                f"    {r.task:10s} {r.init:14s} lr {r.lr:5s} {r.statistic:4s} "
                f"{r.metric:6s} {r.formatted()}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    print(describe(get_weights(args.name)))
    return 0
