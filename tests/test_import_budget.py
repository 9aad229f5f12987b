"""What each entry point costs to import: the core loads no optional package, the command
line's --help/--version/list/info load no torch, and a missing extra is one clear line.

Each check runs in a fresh interpreter and inspects its ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Packages that only the extras bring; the core must never import them.
EXTRA_PACKAGES = (
    "scipy",
    "pandas",
    "sklearn",
    "threadpoolctl",
    "matplotlib",
    "SimpleITK",
    "pytorch_grad_cam",
    "torchmetrics",
    "cv2",
    "openpyxl",
    "codecarbon",
    "pyarrow",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "monai",
)
#: The frameworks the light commands must not start.
FRAMEWORKS = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "safetensors")

_REPORT = """
import json, sys
print("\\n@@" + json.dumps(sorted({m.split(".")[0] for m in list(sys.modules)})))
"""


def _run(code: str, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``code`` in a fresh interpreter; returns the process and its top-level modules."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + _REPORT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "@@" in proc.stdout, proc.stdout + proc.stderr
    return proc, set(json.loads(proc.stdout.rsplit("@@", 1)[1]))


def _clean_env_check() -> None:
    _, baseline = _run("pass")
    leaked = baseline & set(EXTRA_PACKAGES + FRAMEWORKS)
    if leaked:
        pytest.skip(f"the interpreter itself imports {leaked} at start-up (sitecustomize?)")


def test_import_radiologynet_imports_no_optional_package_and_no_torch():
    _clean_env_check()
    _, modules = _run("import radiologynet; radiologynet.list_weights()")
    assert not modules & set(EXTRA_PACKAGES), modules & set(EXTRA_PACKAGES)
    assert not modules & set(FRAMEWORKS), modules & set(FRAMEWORKS)


def test_create_model_create_unet_read_image_and_for_model_import_no_optional_package(tmp_path):
    _clean_env_check()
    dicom = tmp_path / "ct.dcm"
    code = """
    import sys
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation = "CT", "MONOCHROME2"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 24, 32, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 4).tobytes()
    ds.save_as(sys.argv[1], enforce_file_format=True)

    import radiologynet
    from radiologynet import io, transforms

    model = radiologynet.create_model("resnet18", weights=None, num_classes=2, in_chans=1)
    image = io.read_image(sys.argv[1])
    tensor = transforms.for_model(model)(image)
    assert tuple(tensor.shape[:1]) == (1,), tensor.shape
    unet = radiologynet.create_unet("resnet18", weights=None, in_chans=1)
    print("ran", tuple(tensor.shape), type(unet).__name__)
    """
    proc, modules = _run(code, str(dicom))
    assert proc.returncode == 0, proc.stderr
    assert "ran (1," in proc.stdout
    assert "torch" in modules and "timm" in modules  # the check can see imports at all
    assert "segmentation_models_pytorch" in modules
    assert not modules & set(EXTRA_PACKAGES), modules & set(EXTRA_PACKAGES)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["list"],
        ["list", "resnet50"],
        ["info", "resnet50.radiologynet"],
        # built from TrainConfig's fields, which load without torch
        ["finetune", "--help"],
        ["benchmark", "--help"],
        ["export", "--help"],
        # the probe's options are plain argparse: no torch, no scikit-learn before it runs
        ["probe", "--help"],
    ],
)
def test_light_commands_import_no_torch(argv):
    _clean_env_check()
    code = """
    import contextlib, io, sys
    from radiologynet.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(sys.argv[1:])
        except SystemExit as stop:  # argparse's --help / --version
            code = stop.code
    assert code == 0, (code, out.getvalue())
    assert out.getvalue().strip(), "printed nothing"
    """
    proc, modules = _run(code, *argv)
    assert proc.returncode == 0, proc.stderr
    assert not modules & set(FRAMEWORKS), modules & set(FRAMEWORKS)
    assert not modules & set(EXTRA_PACKAGES), modules & set(EXTRA_PACKAGES)


def test_console_entry_point_runs_help():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "radiologynet", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "download" in proc.stdout and "finetune" in proc.stdout


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        (("scipy",), ["compare", "."], "analysis"),  # an existing folder: the extra is next
        (("SimpleITK",), None, "volumes"),
    ],
)
def test_missing_extra_is_one_line_naming_the_install_command(missing, argv, extra, tmp_path):
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in missing)
    if argv is None:  # a library call rather than a command: the error itself
        code = f"""
        import sys
        {hide}
        from radiologynet.errors import MissingDependencyError
        from radiologynet.io import read_volume
        try:
            read_volume({str(tmp_path / "v.mhd")!r})
        except MissingDependencyError as err:
            print("ERR", err)
        """
        proc, _ = _run(code)
        assert f'pip install "radiologynet[{extra}]"' in proc.stdout, proc.stdout + proc.stderr
        return
    code = f"""
    import sys
    {hide}
    from radiologynet.cli import main
    code = main(sys.argv[1:])
    print("EXIT", code)
    """
    proc, _ = _run(code, *argv)
    assert "EXIT 1" in proc.stdout, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f'pip install "radiologynet[{extra}]"' in lines[0]
    assert lines[0].startswith(f"radiologynet {argv[0]}: error:")


def _extras() -> tuple[list[str], dict[str, set[str]]]:
    """pyproject's core requirement names and each extra's names, self-references resolved."""
    tomllib = pytest.importorskip("tomllib")  # stdlib from Python 3.11
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "project"
    ]

    def name(requirement: str) -> str:
        return (
            requirement.split(";")[0]
            .split("[")[0]
            .split(">")[0]
            .split("=")[0]
            .split("<")[0]
            .strip()
            .lower()
        )

    raw = project["optional-dependencies"]

    def resolve(extra: str) -> set[str]:
        names = set()
        for req in raw[extra]:
            if name(req) == "radiologynet":
                inner = req.split("[", 1)[1].split("]", 1)[0]
                for other in inner.split(","):
                    names |= resolve(other.strip())
            else:
                names.add(name(req))
        return names

    return [name(r) for r in project["dependencies"]], {extra: resolve(extra) for extra in raw}


def test_each_optional_package_is_in_the_extra_its_error_names():
    from radiologynet._optional import OPTIONAL, install_hint

    core, extras = _extras()
    for module, (distribution, extra) in OPTIONAL.items():
        assert distribution.lower() in extras[extra], (module, extra)
        assert distribution.lower() in extras["all"], module
        assert distribution.lower() not in core, f"{distribution} must not be a core dependency"
        assert f'pip install "radiologynet[{extra}]"' in install_hint(module)
    assert "nibabel" not in core
    assert set(OPTIONAL) == set(EXTRA_PACKAGES) - {"cv2"}  # cv2 comes only with grad-cam


def test_optional_packages_are_imported_only_through_require():
    """No ``import scipy`` / ``from pandas import ...`` anywhere in the package: every such
    import goes through radiologynet._optional.require (type-checking-only imports aside)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "radiologynet"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                guarded |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for module in names:
                if module.split(".")[0] in EXTRA_PACKAGES + ("nibabel",):
                    offenders.append(f"{path.relative_to(root.parent)}:{node.lineno} {module}")
    assert not offenders, offenders


def test_reading_results_and_task_metadata_loads_no_framework():
    """The report's readers and the task registry loaded torch after the re-layout (the
    run-folder format sat in the protocol package, whose plug-ins import torch, and
    ``radiologynet.data`` imported its torch datasets eagerly): 0.4 s became 5.5 s."""
    _clean_env_check()
    _, modules = _run(
        "import radiologynet.analysis.report.results, radiologynet.data.tasks, "
        "radiologynet.train.runs"
    )
    assert not modules & set(FRAMEWORKS), modules & set(FRAMEWORKS)
