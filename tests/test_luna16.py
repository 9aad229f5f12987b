"""LUNA16: synthetic CT volumes (.mhd/.raw, non-identity spacing, origin and direction)
with spherical nodules at known world coordinates; masks, split, cache and a 2-epoch run
of the protocol runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radiologynet.data.benchmarks import luna16
from radiologynet.data.benchmarks.luna16 import (
    LUNA16,
    nodule_mask,
    read_candidates,
    scale_hu,
    split_series,
)
from radiologynet.demo.synthetic_luna16 import make_synthetic_luna16
from radiologynet.errors import DatasetFormatError, DatasetNotFoundError, InvalidArgumentError
from radiologynet.train import TrainConfig

SPACING = (0.75, 0.7, 2.5)
FLIPPED = (-1, 0, 0, 0, -1, 0, 0, 0, 1)  # x and y reversed, as some scanners write


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    root = tmp_path_factory.mktemp("luna16")
    nodules = make_synthetic_luna16(
        root, num_series=12, spacing_xyz=SPACING, direction=FLIPPED, shape_zyx=(20, 64, 64)
    )
    return root, nodules


def _expected_voxel(root, nodule):
    """The nodule's voxel (z, y, x) computed by SimpleITK from the file's own header."""
    mhd = next(root.glob(f"subset*/{nodule.seriesuid}.mhd"))
    image = sitk.ReadImage(str(mhd))
    x, y, z = image.TransformPhysicalPointToContinuousIndex(nodule.center_xyz)
    return np.array([z, y, x]), sitk.GetArrayFromImage(image)


def test_masks_land_on_the_nodules(luna, tmp_path):
    root, nodules = luna
    for method in ("paper", "sphere"):
        data = LUNA16(root, mask_method=method, cache_dir=tmp_path, progress=False)
        for uid in list(data.series)[:4]:
            samples = data.samples(uid)
            written = [n for n in nodules if n.seriesuid == uid]
            assert len(samples.centres_zyx) == len(written)
            for centre, nodule in zip(samples.centres_zyx, written, strict=True):
                expected, hu = _expected_voxel(root, nodule)
                np.testing.assert_allclose(centre, expected, atol=1e-3)
                z, y, x = np.rint(expected).astype(int)
                assert z in samples.slice_index
                k = list(samples.slice_index).index(z)
                assert samples.slice_masks[k, y, x]
                assert hu[z, y, x] > -700  # really on the (dense) nodule
                # the mask stays on the nodule: every masked voxel of that slice is dense
                # and within the annotated radius (+ one voxel) of a nodule centre
                ys, xs = np.nonzero(samples.slice_masks[k])
                assert (hu[z][ys, xs] > -700).all() or method == "sphere"
                radii = []
                for other in written:
                    oz, oy, ox = _expected_voxel(root, other)[0]
                    radii.append(
                        np.sqrt(
                            ((ys - oy) * SPACING[1]) ** 2
                            + ((xs - ox) * SPACING[0]) ** 2
                            + ((z - oz) * SPACING[2]) ** 2
                        )
                        - other.diameter_mm / 2
                    )
                assert (np.min(radii, axis=0) <= 1.0).all()
                # the training crop is centred on the nodule
                crop_mask = samples.crop_masks[written.index(nodule)]
                assert crop_mask[48, 48]


def test_sphere_volume_matches_diameter(luna, tmp_path):
    root, nodules = luna
    nodule = nodules[0]
    centre, hu = _expected_voxel(root, nodule)
    mask = nodule_mask(hu, centre[None], [nodule.diameter_mm], SPACING[::-1], "sphere")
    voxel_volume = np.prod(SPACING)
    expected = np.pi / 6 * nodule.diameter_mm**3 / voxel_volume
    assert abs(mask.sum() - expected) / expected < 0.35
    paper = nodule_mask(hu, centre[None], [nodule.diameter_mm], SPACING[::-1], "paper")
    assert paper[tuple(np.rint(centre).astype(int))]
    assert (hu[paper] > -700).all()
    # the paper's mask ignores the diameter, the sphere follows it
    bigger = nodule_mask(hu, centre[None], [3 * nodule.diameter_mm], SPACING[::-1], "paper")
    assert np.array_equal(bigger, paper)


def test_split_is_series_level(luna, tmp_path):
    root, _ = luna
    data = LUNA16(root, cache_dir=tmp_path, progress=False, test_every=4)
    splits = data.splits
    everything = splits["train"] + splits["val"] + splits["test"]
    assert sorted(everything) == sorted(data.series)
    assert len(set(everything)) == len(everything)  # no series in two splits
    assert splits["val"] == sorted(data.series)[::10]
    assert splits["test"] and not set(splits["test"]) & set(splits["val"])
    val_slices = sum(len(data.samples(u).slice_index) for u in splits["val"])
    assert len(data.slices("val")) == val_slices
    train_crops = sum(len(data.samples(u).crops) for u in splits["train"])
    assert len(data.crops("train")) == train_crops
    assert split_series(["b", "a", "c"], val_every=2) == {
        "train": ["b"],
        "val": ["a", "c"],
        "test": [],
    }
    with pytest.raises(InvalidArgumentError):
        split_series(["a"], val_every=1)


def test_cache_avoids_rereading_volumes(luna, tmp_path, monkeypatch):
    root, _ = luna
    first = LUNA16(root, cache_dir=tmp_path, progress=False)
    image, mask = first.slices("val")[0]
    assert image.shape[0] == 1 and 0 <= image.min() and image.max() <= 1
    assert len(list(tmp_path.glob("*.npz"))) == len(first.splits["val"])

    def no_read(*args, **kwargs):
        raise AssertionError("volume re-read despite the cache")

    monkeypatch.setattr(luna16, "read_volume", no_read)
    again = LUNA16(root, cache_dir=tmp_path, progress=False)
    image2, mask2 = again.slices("val")[0]
    assert (image2 == image).all() and (mask2 == mask).all()
    with pytest.raises(AssertionError, match="re-read"):  # another mask method: new entry
        LUNA16(root, cache_dir=tmp_path, mask_method="sphere", progress=False).slices("val")


def test_hu_scaling_and_candidates(luna):
    assert scale_hu(np.array([-3000, -1000, 0, 1000, 3000])).tolist() == [0, 0, 0.5, 1, 1]
    root, nodules = luna
    candidates = read_candidates(root)
    assert sum(c[2] for c in candidates) == len(nodules)


def test_missing_or_malformed_dataset(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="luna16.grand-challenge.org"):
        LUNA16(tmp_path)
    make_synthetic_luna16(tmp_path, num_series=2, shape_zyx=(8, 32, 32))
    (tmp_path / "annotations.csv").write_text("seriesuid,x,y\n1,2,3\n")
    with pytest.raises(DatasetFormatError, match="coordX"):
        LUNA16(tmp_path)
    with pytest.raises(InvalidArgumentError, match="mask_method"):
        LUNA16(tmp_path, mask_method="blob")


@pytest.mark.parametrize(
    "text, says",
    [
        (b"seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3\n", "line 2"),  # short row
        (b"seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3,x\n", "line 2"),
        (b"seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.\xe9,1,2,3,4\n", "not UTF-8"),
        (b"", "empty"),
    ],
)
def test_malformed_sheets_are_one_error_naming_the_file(tmp_path, text, says):
    from radiologynet.data.benchmarks.luna16 import read_annotations

    (tmp_path / "annotations.csv").write_bytes(text)
    with pytest.raises(DatasetFormatError, match=says) as err:
        read_annotations(tmp_path)
    assert "annotations.csv" in str(err.value)
    (tmp_path / "candidates_V2.csv").write_bytes(
        b"seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,2,3,2\n"
    )
    with pytest.raises(DatasetFormatError, match="class 2 is not 0 or 1"):
        read_candidates(tmp_path)


def test_two_epoch_benchmark_run_writes_dice_and_iou(luna, tmp_path, monkeypatch):
    monkeypatch.setenv("RADIOLOGYNET_CACHE", str(tmp_path / "cache"))
    import radiologynet.protocol as benchmarks

    root, _ = luna
    results = benchmarks.run(
        "luna16",
        root,
        models=["mobilenet_v3_small"],
        inits=["random"],
        lrs=["1e-3"],
        runs=1,
        out=tmp_path / "out",
        config=TrainConfig(max_epochs=2, batch_size=8, progress=False),
        task_settings={"samples_per_epoch": 24},
    )
    folder = tmp_path / "out" / "mobilenet_v3_small-random-1e-3-run1"
    result = json.loads((folder / "result.json").read_text())
    assert result == results[0]
    assert result["status"] == "finished" and result["epochs_run"] == 2
    assert result["task"] == "luna16" and result["config"]["monitor"] == "crop_iou"
    assert result["config"]["task_settings"]["samples_per_epoch"] == 24
    val = result["val"]
    assert 0 <= val["crop_iou"] <= val["crop_dice"] <= 1
    assert 0 <= val["pooled_iou"] <= val["pooled_dice"] <= 1
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert all("val_crop_dice" in e and "val_pooled_dice" in e for e in log)
    # the reported epoch is the one with the best mean crop IoU (the paper's Table 2)
    best = max(log, key=lambda e: e["val_crop_iou"])
    assert result["best_epoch"] == best["epoch"]
    # training stops on the full-slice recall, as the authors' did; their crop measure
    # (offset crops, mid-range threshold) is logged beside the library's
    assert result["config"]["stop_monitor"] == "slices_pooled_recall"
    assert result["config"]["stop_mode"] == "max"
    for entry in log:
        assert 0 <= entry["val_slices_pooled_recall"] <= 1
        assert {"val_slices_loss", "val_authors_crop_iou", "val_authors_crop_dice"} <= set(entry)
    assert (folder / "model" / "model.safetensors").is_file()
    from radiologynet.models.unet import load_unet

    best = load_unet(folder / "model").eval()  # strict: every tensor of the trained U-Net
    assert best(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    assert any((tmp_path / "cache" / "luna16").glob("*.npz"))


def test_cli_lists_and_plans_the_luna16_task(luna, capsys):
    from radiologynet.cli import main

    root, _ = luna
    assert main(["benchmark", "--list-tasks"]) == 0
    listed = capsys.readouterr().out
    assert all(
        name in listed for name in ("luna16 ", "luna16-heldout", "luna16-sphere", "luna16-slices")
    )
    assert (
        main(
            [
                "benchmark",
                "--task",
                "luna16",
                "--data",
                str(root),
                "--models",
                "resnet18",
                "--inits",
                "random",
                "--runs",
                "1",
                "--dry-run",
            ]
        )
        == 0
    )
    planned = capsys.readouterr().out
    assert all(f"resnet18-random-{lr}-run1" in planned for lr in ("1e-3", "1e-4", "1e-5"))


def test_task_builds_the_requested_unet(luna, tmp_path):
    from radiologynet.models._paper_unet import PaperUNet
    from radiologynet.models._vanilla_unet import VanillaUNet
    from radiologynet.protocol.spec import DataRequest, ModelRequest
    from radiologynet.protocol.tasks.luna16 import build_data, build_model

    root, _ = luna
    data = build_data(DataRequest(root=root, in_chans=3, cache_dir=tmp_path), test_every=5)
    assert data.test is not None and len(data.test) > 0
    from radiologynet.protocol import get_task_spec

    def request(name):
        return DataRequest(root=root, cache_dir=tmp_path, settings=get_task_spec(name).settings)

    heldout = get_task_spec("luna16-heldout").build_data(request("luna16-heldout"))
    assert heldout.test is not None and heldout.extra["mask_method"] == "paper"
    sphere = get_task_spec("luna16-sphere").build_data(request("luna16-sphere"))
    assert sphere.test is None and sphere.extra["mask_method"] == "sphere"
    image, mask = data.train[0]
    x, y = data.batch_transform(
        image[None], mask[None], train=True, generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (1, 3, 64, 64) and y.shape == (1, 1, 64, 64)
    assert isinstance(build_model(ModelRequest("unet", None, data)).net, VanillaUNet)
    paper = build_model(ModelRequest("mobilenet_v3_small", None, data, head="paper"))
    assert isinstance(paper.net, PaperUNet)
    assert isinstance(build_model(ModelRequest("unet-resnet18-paper", None, data)).net, PaperUNet)


def test_samples_per_epoch_is_a_task_setting_with_the_papers_default(luna, tmp_path):
    from radiologynet.protocol import get_task_spec, with_settings
    from radiologynet.protocol.spec import DataRequest

    root, _ = luna
    spec = get_task_spec("luna16")
    assert spec.settings["samples_per_epoch"] == 300_000  # the paper's
    data = spec.build_data(DataRequest(root=root, cache_dir=tmp_path, settings=spec.settings))
    crops = LUNA16(root, cache_dir=tmp_path, progress=False).crops("train")
    assert len(data.train) == 300_000
    # item i is crop i % n: every crop is drawn, in turn
    n = len(crops)
    assert torch.equal(data.train[n + 1][0], crops[1][0])
    small = with_settings(spec, samples_per_epoch=40)
    assert (
        len(
            small.build_data(
                DataRequest(root=root, cache_dir=tmp_path, settings=small.settings)
            ).train
        )
        == 40
    )
    with pytest.raises(InvalidArgumentError, match="samples_per_epoch"):
        with_settings(spec, samples_per_epochs=40)
    with pytest.raises(InvalidArgumentError, match="positive"):
        luna16.LunaCrops(crops.crops.numpy(), crops.masks.numpy(), 0)


def test_validation_uses_the_central_64_pixels_of_each_nodule_crop(luna, tmp_path):
    from radiologynet.protocol.spec import DataRequest
    from radiologynet.protocol.tasks.luna16 import build_data

    root, _ = luna
    dataset = LUNA16(root, cache_dir=tmp_path, progress=False)
    data = build_data(DataRequest(root=root, cache_dir=tmp_path))
    full = dataset.crops("val")
    assert len(data.val) == len(full)
    image, mask = data.val[0]
    assert image.shape == (1, 64, 64)
    assert torch.equal(image, full[0][0][:, 16:80, 16:80])
    assert mask[0, 32, 32] == 1  # centred on the nodule
    assert data.extra["unit"] == "crop"
    slices = build_data(DataRequest(root=root, cache_dir=tmp_path), validation="slices")
    assert len(slices.val) == len(dataset.slices("val")) and slices.extra["unit"] == "slice"
    with pytest.raises(InvalidArgumentError, match="validation"):
        build_data(DataRequest(root=root, cache_dir=tmp_path), validation="volumes")


def test_paper_augmentation_moves_image_and_mask_together():
    from radiologynet.transforms.augment import LunaAugmentation

    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(16, 1, 64, 64)
    mask[:, :, 20:40, 24:34] = 1  # an off-centre block: flips and rotations move it
    image = mask.clone()
    noiseless = LunaAugmentation(noise_hu=0.0)
    moved_image, moved_mask = noiseless(image, mask, g)
    assert set(moved_mask.unique().tolist()) <= {0.0, 1.0}
    # the same transform on both: where the mask is, the image is bright
    assert ((moved_image > 0.5) == moved_mask.bool()).float().mean() > 0.99
    assert not torch.equal(moved_mask, mask)  # something happened
    # the mask area is kept within the scale range (0.8-1.2 per axis)
    ratio = moved_mask.sum((1, 2, 3)) / mask.sum((1, 2, 3))
    assert (ratio > 0.8**2 - 0.1).all() and (ratio < 1.2**2 + 0.1).all()
    identity = LunaAugmentation(flip=False, offset=0.0, scale=0.0, rotate=False, noise_hu=0.0)
    same_image, same_mask = identity(image, mask, g)
    assert torch.allclose(same_image, image, atol=1e-5) and torch.equal(same_mask, mask)
    noisy, _ = LunaAugmentation(flip=False, offset=0.0, scale=0.0, rotate=False)(
        torch.full((64, 1, 64, 64), 0.5), mask.repeat(4, 1, 1, 1), g
    )
    assert (noisy - 0.5).std().item() == pytest.approx(25 / 2000, rel=0.05)  # 25 HU
    # the authors' offset had no effect (written into the matrix row affine_grid never
    # reads): no shift by default; the book's 0.03 is a named option that really shifts
    assert torch.equal(LunaAugmentation().matrices(50, g)[:, :, 2], torch.zeros(50, 2))
    angles = LunaAugmentation(offset=0.03).matrices(2000, torch.Generator().manual_seed(1))
    shifts = angles[:, :, 2]
    assert shifts.abs().max() <= 0.03 and shifts.abs().max() > 0.025


def test_the_luna16_preset_is_the_augmentation_the_runner_applies():
    """AUGMENTATIONS["luna16"] was flips + noise while the runner applied the paper's
    affine augmentation (review 2.4)."""
    from radiologynet.protocol.tasks.luna16 import LUNA16_SETTINGS, luna_batch_transform
    from radiologynet.transforms import AUGMENTATIONS
    from radiologynet.transforms.augment import LunaAugmentation, resolve_augmentation

    paper = LunaAugmentation.from_settings(LUNA16_SETTINGS)
    assert resolve_augmentation("luna16") == AUGMENTATIONS["luna16"] == paper
    assert luna_batch_transform().transform.augmentation.augmentation == paper
    image = torch.rand(2, 1, 32, 32)
    out, mask = AUGMENTATIONS["luna16"](image, None, torch.Generator().manual_seed(0))
    assert out.shape == image.shape and mask is None  # images without masks too


def test_offset_crops_are_the_authors_random_cuts(luna, tmp_path):
    """The authors' evaluation crops: a 64 x 64 cut of each 96 x 96 nodule crop at a random
    offset in 0..31 (random.randrange(0, 32)), here drawn once from a seed."""
    root, _ = luna
    data = LUNA16(root, cache_dir=tmp_path, progress=False, nodules="annotations")
    full = data.crops("val")
    cut = data.offset_crops("val", 64, seed=3)
    assert len(cut) == len(full) and cut.crops.shape[1:] == (64, 64)
    for k in range(len(full)):
        matches = [
            (r, c)
            for r in range(32)
            for c in range(32)
            if torch.equal(full.crops[k, r : r + 64, c : c + 64], cut.crops[k])
            and torch.equal(full.masks[k, r : r + 64, c : c + 64], cut.masks[k])
        ]
        assert matches, k  # a cut of the nodule's own crop, at an offset below 32
    again = data.offset_crops("val", 64, seed=3)
    assert torch.equal(again.crops, cut.crops)
    with pytest.raises(InvalidArgumentError, match="offset crop size"):
        data.offset_crops("val", 96)


def test_positive_nodules_come_from_the_malignancy_matched_list(luna, tmp_path, recwarn):
    """The authors trained on the malignancy-matched list; with it in the folder it is
    used, without it annotations.csv is, and a warning (once) says the list differs."""
    import shutil
    import warnings

    from radiologynet.data.benchmarks.luna16 import read_nodules

    source, nodules = luna
    root = tmp_path / "luna"
    shutil.copytree(source, root)
    with pytest.warns(UserWarning, match="malignancy-matched"):
        listed, sheet = read_nodules(root)
    assert sheet == "annotations.csv" and len(listed) == len(nodules)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_nodules(root)  # once per folder
        read_nodules(root, "annotations")  # asked for: no warning
    with pytest.raises(DatasetNotFoundError, match="annotations_with_malignancy.csv"):
        read_nodules(root, "malignancy")
    # the book's sheet: annotations.csv's columns plus malignancy, unmatched rows dropped
    lines = (root / "annotations.csv").read_text().splitlines()
    kept = [lines[0] + ",mal_bool"] + [line + ",False" for line in lines[2:]]
    (root / "annotations_with_malignancy.csv").write_text("\n".join(kept) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = LUNA16(root, cache_dir=tmp_path / "cache", progress=False)
    assert data.nodule_sheet == "annotations_with_malignancy.csv"
    assert sum(len(v) for v in data.nodules.values()) == len(nodules) - 1
    everything = LUNA16(root, cache_dir=tmp_path / "cache", progress=False, nodules="annotations")
    assert sum(len(v) for v in everything.nodules.values()) == len(nodules)
    with pytest.raises(InvalidArgumentError, match="nodules="):
        read_nodules(root, "some")


def test_runs_stop_on_the_tasks_stop_monitor_unless_the_config_names_one():
    from radiologynet.protocol import get_task_spec
    from radiologynet.protocol.runner import RunSettings, plan, run_config

    (spec,) = plan("luna16", ["unet-resnet18"], ["random"], ["1e-3"], 1)
    luna = get_task_spec("luna16")
    paper = run_config(spec, luna, TrainConfig(), RunSettings())
    assert (paper.monitor, paper.stop_monitor, paper.stop_mode) == (
        "crop_iou",
        "slices_pooled_recall",
        "max",
    )
    ours = run_config(spec, luna, TrainConfig(stop_monitor="crop_iou"), RunSettings())
    assert ours.stop_monitor == "crop_iou"
    slices = run_config(spec, get_task_spec("luna16-slices"), TrainConfig(), RunSettings())
    assert slices.stop_monitor is None and slices.monitor == "pooled_dice"
    (other,) = plan("btmr", ["resnet50"], ["random"], ["1e-3"], 1)
    assert (
        run_config(other, get_task_spec("btmr"), TrainConfig(), RunSettings()).stop_monitor is None
    )
    with pytest.raises(InvalidArgumentError):
        TrainConfig(stop_mode="up")
