"""``radiologynet publish DIR --repo-id ORG/NAME``: upload a weights folder to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Upload a weights folder (from `radiologynet convert` or a training run) "
        "to a Hugging Face Hub model repository, creating it if needed. The folder "
        "must first load with plain timm (timm.create_model('local-dir:DIR', "
        "pretrained=True)). Uploads config.json, model.safetensors and README.md "
        "(plus --include files) in one commit and prints the commit to pin in the "
        "weight's record."
    )
    parser.add_argument("folder", type=Path, help="the weights folder")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument(
        "--revision", default=None, help="branch to commit to, or the PR's target (default main)"
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="FILE",
        help="another file of the folder to upload (repeatable)",
    )
    parser.add_argument(
        "--commit-message", default=None, help="default: 'Upload RadiologyNET weights folder'"
    )
    parser.add_argument(
        "--create-pr",
        action="store_true",
        help="open a pull request instead of committing to the branch",
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the folder loads with timm and list the files, sizes and "
        "sha256 that would be uploaded; no network",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from radiologynet.models._folder import read_weights_folder, sha256_file
    from radiologynet.models.publish import (
        check_loads_with_timm,
        publish_weights_folder,
        upload_files,
    )

    folder: Path = args.folder
    if args.dry_run:
        read_weights_folder(folder)
        files = upload_files(folder, args.include)
        check_loads_with_timm(folder)
        print(
            f"would upload {len(files)} files from {folder} to "
            f"https://huggingface.co/{args.repo_id} (revision {args.revision or 'main'}"
            + (", as a pull request" if args.create_pr else "")
            + "):"
        )
        for name in files:
            print(
                f"  {name:24s} {(folder / name).stat().st_size:>12,d} B  "
                f"sha256 {sha256_file(folder / name)}"
            )
        return 0
    published = publish_weights_folder(
        folder,
        args.repo_id,
        include=args.include,
        revision=args.revision,
        private=args.private,
        create_pr=args.create_pr,
        commit_message=args.commit_message,
    )
    print(f"published {', '.join(published.files)}: {published.url or published.repo_id}")
    print(
        f"pin it in the record: hub_repo_id={published.repo_id!r}, "
        f"hub_revision={published.revision!r}, sha256={published.sha256!r}"
    )
    return 0
