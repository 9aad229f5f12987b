"""Draw docs/images/pretraining-mosaic.png: the pseudo-labelling mosaic of the
``radiologynet demo --full`` archive (96 synthetic DICOM images, 7 clusters).

Usage: ``python docs/scripts/make_pretraining_mosaic.py`` from the repository root.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

from radiologynet.demo.synthetic_archive import write_synthetic_archive
from radiologynet.pretraining.pseudolabel import PseudoLabelConfig, pseudo_label

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "pretraining-mosaic.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        archive = Path(tmp) / "archive"
        write_synthetic_archive(
            archive, 96, include_mixed=True, missing_tag_fraction=0.05, n_unreadable=1, seed=0
        )
        config = PseudoLabelConfig(n_clusters=7, image_size=32, progress=False)
        result = pseudo_label(archive, Path(tmp) / "labels.csv", config)
        shutil.copyfile(result.report["mosaic"], OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
