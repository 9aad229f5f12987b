"""One preprocessing per weight: the same image gives the same tensor through the training
path (decoded samples + the batch transform as the trainer calls it), the evaluation path
(``train.evaluate``), the protocol runner's path (``preprocessing_for`` -> the task's data
and transform) and ``transforms.for_model`` / ``record.transforms()``, for every weight tag,
with ``in_chans`` 1 and 3. Random-init models carry the record's ``pretrained_cfg``; no
downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import radiologynet
from radiologynet import transforms
from radiologynet.data.samples import SampleDataset
from radiologynet.data.splits import Sample
from radiologynet.protocol.runner import preprocessing_for
from radiologynet.protocol.spec import DataRequest, get_task_spec
from radiologynet.train import TrainConfig, evaluate
from radiologynet.train.metrics import PredictionMetrics

ATOL = 1e-6


def _one_record_per_tag() -> list[radiologynet.WeightRecord]:
    """The record of the smallest architecture (by input size, then registry order) of
    every tag the zoo has."""
    chosen: dict[str, radiologynet.WeightRecord] = {}
    for record in radiologynet.list_weights():
        best = chosen.get(record.tag)
        if best is None or record.preprocessing.input_size < best.preprocessing.input_size:
            chosen[record.tag] = record
    return list(chosen.values())


RECORDS = _one_record_per_tag()


@pytest.fixture(scope="module")
def folder_task(tmp_path_factory) -> Path:
    """A ``folder`` task: two classes, images larger and smaller than any input size, odd
    shapes (so the letterbox pads and resizes both ways), textured (so anti-aliasing or a
    different interpolation would show)."""
    root = tmp_path_factory.mktemp("folder-task")
    rng = np.random.default_rng(0)
    shapes = {"a": [(400, 330), (90, 61)], "b": [(257, 380), (150, 150)]}
    for split in ("train", "val"):
        for label, sizes in shapes.items():
            (root / split / label).mkdir(parents=True)
            for i, shape in enumerate(sizes):
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


class Capture(nn.Module):
    """A classifier that remembers what it was fed (the evaluation path's tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.bias.expand(x.shape[0], 2)


def _model_with_cfg(record: radiologynet.WeightRecord, in_chans: int) -> nn.Module:
    model = radiologynet.create_model(record.arch, weights=None, in_chans=in_chans, num_classes=2)
    model.pretrained_cfg = record.pretrained_cfg()  # what create_model(record) attaches
    return model


@pytest.mark.parametrize("in_chans", [3, 1])
@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_training_evaluation_runner_and_for_model_agree(record, in_chans, folder_task):
    pre = record.preprocessing
    # the protocol runner: preprocessing read without a model, then the task's own data
    runner_pre = preprocessing_for(record.arch, record.tag)
    assert runner_pre == pre
    data = get_task_spec("folder").build_data(
        DataRequest(root=folder_task, preprocessing=runner_pre, in_chans=in_chans, augment=False)
    )
    val = data.val
    paths = [s.path for s in val.samples]
    images = torch.stack([val[i][0] for i in range(len(val))])
    targets = torch.stack([val[i][1] for i in range(len(val))])
    runner, _ = data.batch_transform(images, targets, train=False, generator=None)

    # training: decoded samples + the one batch transform, called as the trainer calls it
    samples = [Sample(path=p, target=0) for p in paths]
    train_set = SampleDataset(samples, pre)
    batch = torch.stack([train_set[i][0] for i in range(len(train_set))])
    trainer_tf = transforms.BatchHook(
        transforms.BatchTransform(pre, in_chans=in_chans, augment=None)
    )
    training, _ = trainer_tf(batch, targets, train=True, generator=torch.Generator())

    # evaluation: train.evaluate feeds the model what the runner's transform makes
    capture = Capture()
    evaluate(
        capture,
        val,
        loss=nn.CrossEntropyLoss(),
        metrics=PredictionMetrics("multiclass", 2),
        batch_size=len(val),
        batch_transform=data.batch_transform,
    )
    evaluation = torch.cat(capture.seen)

    # inference: for_model on a model carrying the record's cfg, and for_weights(record)
    model = _model_with_cfg(record, in_chans)
    by_model = torch.stack([transforms.for_model(model)(p) for p in paths])
    by_record = torch.stack([transforms.for_weights(record, in_chans=in_chans)(p) for p in paths])

    size = pre.input_size
    assert runner.shape == (len(paths), in_chans, size, size)
    for name, other in [
        ("training", training),
        ("evaluation", evaluation),
        ("for_model", by_model),
        ("for_weights", by_record),
    ]:
        torch.testing.assert_close(other, runner, atol=ATOL, rtol=0, msg=name)
    assert float(runner.std()) > 0.1  # real content, not an empty tensor


@pytest.mark.parametrize("crop_mode,interpolation", [("center", "bicubic"), ("border", "nearest")])
def test_runner_reads_crop_mode_and_interpolation_from_a_weights_folder(
    tmp_path, folder_task, crop_mode, interpolation
):
    from radiologynet.models._folder import write_weights_folder

    model = radiologynet.create_model("resnet18", weights=None, num_classes=2)
    cfg = {
        "crop_mode": crop_mode,
        "interpolation": interpolation,
        "crop_pct": 0.9,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    folder = write_weights_folder(
        model.state_dict(),
        tmp_path / "w",
        arch="resnet18",
        num_classes=2,
        extra_config={"pretrained_cfg": cfg},
    )
    pre = preprocessing_for("resnet18", str(folder))
    assert pre.letterbox == (crop_mode == "border")
    assert (pre.interpolation, pre.crop_pct, pre.mean) == (interpolation, 0.9, (0.5,) * 3)
    assert pre == transforms.read_preprocessing(
        radiologynet.create_model("resnet18", weights=folder, num_classes=2)
    )
    data = get_task_spec("folder").build_data(
        DataRequest(root=folder_task, preprocessing=pre, augment=False)
    )
    path = data.val.samples[0].path
    runner, _ = data.batch_transform(data.val[0][0][None], None, train=False)
    torch.testing.assert_close(runner[0], transforms.for_weights(folder)(path), atol=ATOL, rtol=0)


def test_a_run_records_the_preprocessing_it_applies(tmp_path, folder_task):
    """Issue 11.10: ``--input-size 64`` used to be recorded as ``config.input_size: 64``
    beside ``config.preprocessing.input_size: 224``."""
    import json
    from dataclasses import asdict, replace

    from radiologynet.protocol.runner import RunSettings, plan, run_one

    task = get_task_spec("folder")
    applied = []

    def spy(request: DataRequest):
        data = task.build_data(request)
        applied.append((request.preprocessing, data.batch_transform))
        return data

    from radiologynet.models._folder import write_weights_folder

    imagenet = radiologynet.get_weights("resnet18.imagenet")
    weights = write_weights_folder(  # an ImageNet-normalised folder, fabricated offline
        radiologynet.create_model("resnet18", weights=None, num_classes=2).state_dict(),
        tmp_path / "w",
        arch="resnet18",
        num_classes=2,
        extra_config={"pretrained_cfg": imagenet.preprocessing.timm_cfg()},
    )
    spec = plan("folder", ["resnet18"], [f"mine={weights}"], ["1e-3"], 1)[0]
    result = run_one(
        spec,
        replace(task, build_data=spy),
        folder_task,
        tmp_path / "out",
        TrainConfig(max_epochs=1, batch_size=4, progress=False),
        RunSettings(input_size=32),
    )
    ((pre, batch_transform),) = applied
    assert result["status"] == "finished"
    config = json.loads((tmp_path / "out" / spec.name / "result.json").read_text())["config"]
    assert config["input_size"] == config["preprocessing"]["input_size"] == 32
    assert config["preprocessing"] == json.loads(json.dumps(asdict(pre)))
    assert batch_transform.transform.size == 32
    assert batch_transform.transform.preprocessing.mean == pre.mean
    assert pre == replace(imagenet.preprocessing, input_size=32)
    assert transforms.read_preprocessing(tmp_path / "out" / spec.name / "model") == pre


def test_every_file_decoder_is_decode_uint8(tmp_path):
    """Pseudo-labelling, pretraining, reconstruction pretraining and fine-tuning decode a
    file the same way: a multi-page TIFF gives its middle page (pages 10/128/250 -> 128;
    pretraining read 10), a float image in [0, 1] is kept as v * 255 (pretraining
    min-max stretched it to 0..255)."""
    from radiologynet.data import ImageListDataset
    from radiologynet.pretraining.pretrain import LabelledImage, PretrainImages
    from radiologynet.pretraining.pseudolabel.features import read_uint8

    stack = tmp_path / "stack.tif"
    pages = [Image.fromarray(np.full((12, 20), v, np.uint8)) for v in (10, 128, 250)]
    pages[0].save(stack, save_all=True, append_images=pages[1:])
    unit = tmp_path / "unit.tif"
    Image.fromarray(np.linspace(0.25, 0.5, 12 * 20, dtype=np.float32).reshape(12, 20)).save(unit)
    size = 16
    for path in (stack, unit):
        expected = transforms.decode_uint8(path, radiologynet.Preprocessing(input_size=size))
        decoded = {
            "pseudo-label": read_uint8(path, size),
            "pretrain": PretrainImages([LabelledImage(path, 0)], size)[0][0],
            "reconstruction": ImageListDataset([path], size=size, validate=False)[0][0],
            "fine-tune": ImageListDataset([path], size=size, progress=False).load_uint8(0),
        }
        for name, tensor in decoded.items():
            assert tensor.dtype == torch.uint8 and tensor.shape == (1, size, size), name
            assert torch.equal(tensor, expected), (path.name, name)
    middle = transforms.decode_uint8(stack, radiologynet.Preprocessing(input_size=size))
    assert int(middle[0, size // 2, size // 2]) == 128
    kept = transforms.decode_uint8(unit, radiologynet.Preprocessing(input_size=size))
    assert 60 <= int(kept[0, 4:12].min()) and int(kept.max()) <= 128
