"""``radiologynet publish DIR --repo-id ORG/NAME``: upload a weights folder to the Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from radiologynet.errors import RadiologyNetError
from radiologynet.hub import read_weights_folder, sha256_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="upload a weights folder to the Hugging Face Hub",
        description="Upload a weights folder (from `radiologynet convert` or a training run) "
                    "to a Hugging Face Hub model repository, creating it if needed. Prints "
                    "the commit to pin in the weight's record.")
    parser.add_argument("folder", type=Path, help="the weights folder")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    parser.add_argument("--revision", default="main", help="branch to commit to (default main)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the files, sizes and sha256 that would be uploaded; no "
                             "network")
    parser.set_defaults(func=run)


def folder_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that would be uploaded (hidden and temporary files skipped)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def run(args: argparse.Namespace) -> int:
    folder: Path = args.folder
    read_weights_folder(folder)  # refuse anything timm could not load
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise RadiologyNetError(f"--repo-id {args.repo_id!r} must look like ORG/NAME.")
    files = folder_files(folder)
    action = "would upload" if args.dry_run else "uploading"
    print(f"{action} {len(files)} files from {folder} to "
          f"https://huggingface.co/{args.repo_id} (revision {args.revision}):")
    for path in files:
        print(f"  {path.relative_to(folder).as_posix():24s} {path.stat().st_size:>12,d} B  "
              f"sha256 {sha256_file(path)}")
    if args.dry_run:
        return 0
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
        if args.revision != "main":
            api.create_branch(args.repo_id, branch=args.revision, repo_type="model",
                              exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=args.repo_id,
                                   repo_type="model", revision=args.revision,
                                   commit_message="Upload RadiologyNET weights folder",
                                   allow_patterns=[p.relative_to(folder).as_posix()
                                                   for p in files])
    except (HfHubHTTPError, OSError) as err:
        raise RadiologyNetError(
            f"Publishing {folder} to {args.repo_id} failed: {err}. Log in with "
            "`hf auth login` (or set HF_TOKEN) and check you may write to that repo."
        ) from err
    revision = getattr(commit, "oid", None) or "?"
    print(f"published: {getattr(commit, 'commit_url', args.repo_id)}")
    print(f"pin it in the record: hub_revision={revision!r}, sha256="
          f"{sha256_file(folder / 'model.safetensors')!r}")
    return 0
