"""Transforms from weight records and models: OpenCV letterbox parity (real radiographs and
synthetic odd shapes), scaling, channels, mean/std, augmentation, the batched path."""

from __future__ import annotations

import functools
import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import radiologynet
from radiologynet import io, transforms
from radiologynet.transforms import Augmentation, BatchHook, BatchTransform, letterbox


def opencv_letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """The authors' letterbox (resize with cv2 INTER_LINEAR, then centred zero padding)."""
    old_size = image.shape[:2]
    ratio = float(size) / max(old_size)
    new_size = tuple(int(x * ratio) for x in old_size)
    resized = cv2.resize(image, (new_size[1], new_size[0]))
    delta_w, delta_h = size - new_size[1], size - new_size[0]
    top, bottom = delta_h // 2, delta_h - delta_h // 2
    left, right = delta_w // 2, delta_w - delta_w // 2
    return cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=[0])


@functools.cache
def _decoded(folder: Path) -> tuple[tuple[str, np.ndarray], ...]:
    return tuple(
        (p.name, io.to_radiologynet_uint8(io.read_image(p))) for p in sorted(folder.glob("*.png"))
    )


@pytest.fixture
def real_radiographs(shared_dir) -> tuple[tuple[str, np.ndarray], ...]:
    """The nine GRAZPEDWRI-DX sample radiographs of ``shared/``, as 8-bit grayscale."""
    folder = shared_dir / "data" / "grazpedwri-sample" / "images"
    if not folder.is_dir():
        pytest.skip(f"GRAZPEDWRI-DX sample not at {folder}")
    return _decoded(folder)


@pytest.mark.parametrize("size", [224, 299, 300, 380])
def test_letterbox_matches_opencv_on_the_nine_real_radiographs(size, real_radiographs):
    assert len(real_radiographs) == 9
    for name, gray in real_radiographs:
        ours = letterbox(gray, size).numpy()
        reference = opencv_letterbox(gray, size)
        assert ours.shape == reference.shape == (size, size)
        assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1, name
        # the float pipeline ends within 1/255 of the original's uint8 / 255
        x = transforms.for_weights(
            radiologynet.get_weights("resnet18.radiologynet").preprocessing.__class__(
                input_size=size
            )
        )(gray)
        assert (x[0].numpy() - reference / 255.0).__abs__().max() <= 1 / 255 + 1e-6


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 700),
    width=st.integers(1, 700),
    size=st.sampled_from([8, 31, 224, 299, 300, 380]),
    seed=st.integers(0, 2**16),
    smooth=st.booleans(),
)
def test_letterbox_matches_opencv_on_odd_sizes(height, width, size, seed, smooth):
    ratio = float(size) / max(height, width)
    if int(min(height, width) * ratio) == 0:  # the original crashes there (cv2 size 0)
        return
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width), dtype=np.uint8)
    if smooth and min(height, width) > 8:
        image = cv2.GaussianBlur(image, (0, 0), 2)
    ours = letterbox(torch.from_numpy(image), size).numpy()
    reference = opencv_letterbox(image, size)
    assert ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).max() <= 1
    # same geometry: the resized image and its padding are exactly where OpenCV put them
    new_h, new_w = int(height * ratio), int(width * ratio)
    assert transforms.letterbox_geometry(height, width, size) == (
        new_h,
        new_w,
        (size - new_h) // 2,
        (size - new_w) // 2,
    )
    bright = letterbox(torch.full((height, width), 255, dtype=torch.uint8), size).numpy()
    np.testing.assert_array_equal(bright, opencv_letterbox(np.full_like(image, 255), size))


def test_letterbox_geometry_keeps_the_original_float_quirk():
    assert transforms.letterbox_geometry(4997, 100, 224)[0] == 223  # int(223.99999999999997)
    assert transforms.letterbox_geometry(614, 444, 224) == (224, 161, 0, 31)


def test_letterbox_keeps_layout_and_device_and_float_dtype():
    x = torch.rand(2, 1, 50, 30)
    out = letterbox(x, 64)
    assert out.shape == (2, 1, 64, 64) and out.dtype == torch.float32
    assert out[..., :, :10].abs().max() == 0  # left padding (64 - 38) // 2 = 13 columns


def test_for_weights_radiologynet_is_letterbox_over_255_in_three_channels(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (90, 60), dtype=np.uint8)
    tf = transforms.for_weights("resnet50.radiologynet")
    x = tf(gray)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    expected = letterbox(gray, 224).float() / 255
    for channel in range(3):
        torch.testing.assert_close(x[channel], expected)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_for_weights_imagenet_normalises_and_sizes_follow_the_record():
    gray = np.full((40, 40), 128, dtype=np.uint8)
    record = radiologynet.get_weights("resnet50.imagenet")
    x = transforms.for_weights(record)(gray)
    mean = torch.tensor(record.preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(record.preprocessing.std).view(3, 1, 1)
    torch.testing.assert_close(x * std + mean, torch.full((3, 224, 224), 128 / 255))
    assert transforms.for_weights("efficientnet_b3.radiologynet")(gray).shape == (3, 300, 300)
    assert transforms.for_weights("inception_v3.radiologynet")(gray).shape == (3, 299, 299)
    one = transforms.for_weights(record, in_chans=1)(gray)
    assert one.shape == (1, 224, 224)
    # the documented in_chans=1 rule: 1/s = mean(1/s_c), m/s = mean(m_c/s_c)
    m, s = record.preprocessing.mean, record.preprocessing.std
    expected = (
        128 / 255 * sum(1 / v for v in s) / 3 - sum(a / b for a, b in zip(m, s, strict=True)) / 3
    )
    torch.testing.assert_close(one[0, 0, 0], torch.tensor(expected, dtype=torch.float32))
    assert float(one[0, 0, 0]) == pytest.approx(0.2352, abs=1e-4)


def test_transform_reads_files_and_dicom_with_window(tmp_path):
    from pydicom import examples

    tf = transforms.for_weights("resnet18.radiologynet", window="lung")
    x = tf(examples.get_path("ct"))
    ref = (
        letterbox(
            io.to_radiologynet_uint8(io.read_image(examples.get_path("ct")), "lung"), 224
        ).float()
        / 255
    )
    torch.testing.assert_close(x[0], ref)


def test_transforms_pickle_for_dataloader_workers():
    tf = transforms.for_weights("resnet18.imagenet", train=True, window="bone")
    clone = pickle.loads(pickle.dumps(tf))
    gray = np.zeros((10, 20), np.uint8)
    assert clone(gray).shape == tf(gray).shape and clone.window == "bone"


def test_for_model_reads_pretrained_cfg_and_first_conv():
    plain = timm.create_model("resnet18", pretrained=False, num_classes=2)
    tf = transforms.for_model(plain)
    cfg = plain.pretrained_cfg
    assert tf.size == cfg["input_size"][-1] and tf.in_chans == 3
    assert tf.preprocessing.mean == tuple(cfg["mean"])
    assert tf.preprocessing.letterbox == (cfg.get("crop_mode") == "border")
    one = timm.create_model("mobilenetv3_small_100", pretrained=False, in_chans=1)
    assert transforms.for_model(one)(np.zeros((20, 30), np.uint8)).shape[0] == 1


def test_for_model_with_a_radiologynet_cfg_equals_for_weights():
    record = radiologynet.get_weights("resnet18.radiologynet")
    model = timm.create_model(
        "resnet18", pretrained=False, pretrained_cfg_overlay=record.pretrained_cfg()
    )
    gray = np.random.default_rng(2).integers(0, 256, (70, 50), dtype=np.uint8)
    tf = transforms.for_model(model)
    assert tf.preprocessing.letterbox and tf.preprocessing.mean is None
    torch.testing.assert_close(tf(gray), transforms.for_weights(record)(gray))


def test_for_model_on_create_model_output():
    model = radiologynet.create_model("resnet18", weights=None, in_chans=1, num_classes=3)
    x = transforms.for_model(model)(np.zeros((64, 48), np.uint8))
    assert x.shape[0] == 1 and x.shape[-1] == model.pretrained_cfg["input_size"][-1]


# --- augmentation and the batched path ------------------------------------------------


def _batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=g)


def test_batch_transform_eval_equals_the_per_image_path():
    pre = radiologynet.Preprocessing(input_size=32)
    batch = _batch()
    out = BatchTransform(pre, train=False)(batch)
    per_image = transforms.for_weights(pre)
    for i in range(batch.shape[0]):
        torch.testing.assert_close(out[i], per_image(batch[i, 0]))
    assert out.shape == (4, 3, 32, 32)


def test_augmentation_is_drawn_per_image_and_off_in_eval():
    pre = radiologynet.Preprocessing(input_size=32)
    same = _batch(1).repeat(8, 1, 1, 1)
    bt = BatchTransform(pre, train=True, generator=torch.Generator().manual_seed(0))
    out = bt(same)
    distinct = {tuple(out[i].flatten()[:50].tolist()) for i in range(8)}
    assert len(distinct) == 8  # eight copies, eight different augmentations
    bt.eval()
    torch.testing.assert_close(bt(same)[0], bt(same)[7])


def test_flip_only_is_an_exact_mirror():
    pre = radiologynet.Preprocessing(input_size=32)
    aug = Augmentation(flip_p=1.0, degrees=0.0, brightness=None, contrast=None)
    batch = _batch()
    out = BatchTransform(pre, train=True, augment=aug)(batch)
    torch.testing.assert_close(
        out[:, :1], torch.flip(batch.float() / 255, dims=[-1]), atol=1e-5, rtol=0
    )


def test_brightness_and_contrast_ranges():
    pre = radiologynet.Preprocessing(input_size=16)
    flat = torch.full((64, 1, 16, 16), 100, dtype=torch.uint8)
    aug = Augmentation(flip_p=0.0, degrees=0.0, contrast=None)
    out = BatchTransform(pre, train=True, augment=aug)(flat)[:, 0, 0, 0] * 255 / 100
    assert 0.8 - 1e-6 <= float(out.min()) and float(out.max()) <= 1.2 + 1e-6
    assert float(out.max() - out.min()) > 0.2  # the range is used, not a constant
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).repeat(64, 1, 1, 1)
    aug = Augmentation(flip_p=0.0, degrees=0.0, brightness=None, contrast=(0.8, 1.3))
    out = BatchTransform(pre, train=True, augment=aug)(ramp)
    flat_out = out[:, 0].reshape(64, -1)
    factor = (flat_out[:, 128] - flat_out[:, 127]) * 255  # mid-grey: never clamped
    assert 0.8 - 1e-4 <= float(factor.min()) and float(factor.max()) <= 1.3 + 1e-4


@pytest.mark.parametrize(
    "name,degrees,scale,translate",
    [("default", 15.0, (1.0, 1.0), 0.0), ("boneage", 20.0, (0.8, 1.2), 0.2)],
)
def test_affine_parameters_stay_in_the_paper_ranges(name, degrees, scale, translate):
    aug = transforms.AUGMENTATIONS[name]
    theta = transforms.random_affine_theta(2000, aug, torch.Generator().manual_seed(3))
    linear = theta[:, :, :2]
    det = torch.linalg.det(linear).abs()  # 1 / scale**2
    zoom = 1 / det.sqrt()
    assert scale[0] - 1e-6 <= float(zoom.min()) and float(zoom.max()) <= scale[1] + 1e-6
    angle = torch.rad2deg(torch.atan2(linear[:, 0, 1].abs(), linear[:, 1, 1]))
    assert float(angle.max()) <= degrees + 1e-6 and float(angle.max()) > degrees * 0.9
    flips = (torch.det(linear) < 0).double().mean()
    assert 0.4 < float(flips) < 0.6
    shift = (torch.linalg.solve(linear, -theta[:, :, 2:]).squeeze(-1)).abs() / 2
    assert float(shift.max()) <= translate + 1e-6
    assert aug.brightness == ((0.8, 1.2) if name == "default" else None)
    assert aug.contrast == ((0.8, 1.3) if name == "default" else None)
    assert math.isclose(aug.flip_p, 0.5)


@pytest.mark.parametrize("shape", [(5, 1, 224, 224), (3, 2, 7, 9), (2, 1, 64, 48)])
def test_affine_grid_is_torchs_grid(shape):
    theta = torch.randn(shape[0], 2, 3, generator=torch.Generator().manual_seed(1))
    ours = transforms.affine_grid(theta, shape)
    torchs = torch.nn.functional.affine_grid(theta, list(shape), align_corners=False)
    assert ours.shape == torchs.shape and ours.dtype == torchs.dtype and ours.is_contiguous()
    torch.testing.assert_close(ours, torchs, rtol=0, atol=2e-6)
    as_double = transforms.affine_grid(theta, shape, dtype=torch.float64)
    assert as_double.dtype == torch.float64 and as_double.device == theta.device
    torch.testing.assert_close(as_double.float(), ours, rtol=0, atol=1e-6)
    identity = torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]).expand(shape[0], 2, 3)
    image = torch.rand(shape)  # the identity grid samples every pixel at its own centre
    sampled = torch.nn.functional.grid_sample(
        image, transforms.affine_grid(identity, shape), align_corners=False
    )
    torch.testing.assert_close(sampled, image, rtol=0, atol=1e-4)  # float32 coordinates


def test_batch_transform_in_chans_normalisation_and_shape_checks():
    record = radiologynet.get_weights("resnet18.imagenet")
    bt = BatchTransform(record.preprocessing, in_chans=1)
    out = bt(_batch(2, 224)[:, 0])  # (B, S, S) is accepted
    assert out.shape == (2, 1, 224, 224)
    with pytest.raises(ValueError, match="grayscale batch"):
        bt(torch.zeros(2, 3, 224, 224, dtype=torch.uint8))
    resized = BatchTransform(radiologynet.Preprocessing(input_size=32))(_batch(2, 20))
    assert resized.shape == (2, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batch_transform_on_gpu_matches_cpu():
    pre = radiologynet.Preprocessing(input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
    batch = _batch(8, 64)
    cpu = BatchTransform(pre)(batch)
    gpu = BatchTransform(pre)(batch.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu)
    aug = BatchTransform(pre, train=True)(batch.cuda())
    assert aug.is_cuda and aug.shape == (8, 3, 64, 64)


@pytest.mark.parametrize(
    "record",
    [r for r in radiologynet.list_weights() if r.tag in ("radiologynet", "imagenet")],
    ids=lambda r: r.name,
)
def test_every_weight_record_gives_its_own_size_and_normalisation(record):
    tf = transforms.for_weights(record)
    pre = record.preprocessing
    assert tf.size == pre.input_size == record.architecture.input_size
    assert tf.batch.normalise == (record.tag == "imagenet")
    out = tf.batch(torch.full((1, 1, pre.input_size, pre.input_size), 255, dtype=torch.uint8))
    expected = 1.0 if pre.mean is None else (1.0 - pre.mean[0]) / pre.std[0]
    assert out.shape == (1, 3, pre.input_size, pre.input_size)
    assert float(out[0, 0, 0, 0]) == pytest.approx(expected)


# --- shapes, the float rule, in_chans=1 statistics (issue 10.4) ---------------------------


def test_transforms_take_batches_single_images_and_refuse_other_shapes():
    tf = transforms.for_weights(radiologynet.Preprocessing(input_size=32))
    batch = _batch(3, 20)
    out = tf(batch)
    assert out.shape == (3, 3, 32, 32)
    for i in range(3):
        torch.testing.assert_close(out[i], tf(batch[i]))  # (1, H, W)
        torch.testing.assert_close(out[i], tf(batch[i, 0]))  # (H, W)
    torch.testing.assert_close(tf(batch.numpy()), out)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        tf(torch.zeros(2, 3, 20, 20, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ambiguous"):
        tf(torch.zeros(5, 20, 20, dtype=torch.uint8))
    bt = BatchTransform(radiologynet.Preprocessing(input_size=32))
    torch.testing.assert_close(bt(batch[:, 0]), out)  # (B, H, W)
    torch.testing.assert_close(bt(batch[0, 0]), out[:1])  # (H, W)
    with pytest.raises(radiologynet.errors.RadiologyNetError, match="grayscale batch"):
        bt(torch.zeros(2, 1, 1, 20, 20))
    with pytest.raises(radiologynet.errors.RadiologyNetError, match="uint8"):
        bt(torch.zeros(2, 1, 20, 20, dtype=torch.int16))


def test_float_in_unit_range_is_kept_not_stretched():
    tf = transforms.for_weights(radiologynet.Preprocessing(input_size=16))
    ramp = np.linspace(0.2, 0.7, 256, dtype=np.float32).reshape(16, 16)
    full = np.linspace(0.0, 1.0, 256, dtype=np.float32).reshape(16, 16)
    out = tf(ramp)
    torch.testing.assert_close(out[0], torch.from_numpy(ramp), atol=1e-6, rtol=0)
    assert not torch.allclose(out, tf(full), atol=0.05)
    assert float(out.min()) == pytest.approx(0.2) and float(out.max()) == pytest.approx(0.7)
    torch.testing.assert_close(tf(torch.from_numpy(ramp)[None, None])[0], out)  # batch
    # the 8-bit cache rounds to the nearest grey level, no stretch
    cached = tf.to_uint8(ramp)
    assert int(cached.min()) == round(0.2 * 255) and int(cached.max()) == round(0.7 * 255)


def test_float_outside_unit_range_is_min_max_scaled_and_windows_win():
    tf = transforms.for_weights(radiologynet.Preprocessing(input_size=16))
    hu = np.linspace(-1000.0, 1000.0, 256, dtype=np.float32).reshape(16, 16)
    out = tf(hu)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0  # documented min-max
    torch.testing.assert_close(out, tf((hu + 1000) / 2000), atol=1 / 255, rtol=0)
    soft = transforms.for_weights(radiologynet.Preprocessing(input_size=16), window=(40.0, 400.0))(
        hu
    )
    assert not torch.allclose(soft, out, atol=0.05)
    assert float(soft[0, 0, 0]) == 0.0  # -1000 HU is below the soft-tissue window


def test_in_chans_1_statistics_make_the_summed_filter_model_equal_the_rgb_model():
    """timm's in_chans=1 sums the RGB filters; with the documented mean/std the one-channel
    model sees exactly what the three-channel model sees when the filters are equal."""
    record = radiologynet.get_weights("resnet18.imagenet")
    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 8, 3, bias=False)
    rgb.weight.data[:] = rgb.weight.data[:, :1]  # equal filters per channel
    gray = torch.nn.Conv2d(1, 8, 3, bias=False)
    gray.weight.data[:] = rgb.weight.data.sum(1, keepdim=True)  # timm's adapt_input_conv
    images = _batch(4, 224)
    three = BatchTransform(record.preprocessing, in_chans=3)(images)
    one = BatchTransform(record.preprocessing, in_chans=1)(images)
    torch.testing.assert_close(gray(one), rgb(three), atol=1e-4, rtol=1e-4)
    red = (images.float() / 255 - record.preprocessing.mean[0]) / record.preprocessing.std[0]
    with torch.no_grad():  # the old DeviceTransform rule: the red channel's mean/std
        assert float((gray(red) - rgb(three)).abs().max()) > 0.1
    mean, std = transforms.channel_mean_std(record.preprocessing.mean, record.preprocessing.std, 1)
    assert mean[0] == pytest.approx(0.44880, abs=1e-5)
    assert std[0] == pytest.approx(0.22598, abs=1e-5)


def test_batch_transform_has_one_calling_convention_and_the_hook_adapts_it():
    """``transform(batch)`` is the only call; the trainer's ``(inputs, target, train=,
    generator=)`` goes through BatchHook, which passes extras and a plain target through."""
    pre = radiologynet.Preprocessing(input_size=16)
    bt = BatchTransform(pre, augment=None)
    batch = _batch(2, 16)
    with pytest.raises(TypeError):
        bt(batch, train=False)
    with pytest.raises(TypeError):
        bt(batch, torch.zeros(2))
    sex, target = torch.ones(2), torch.tensor([0, 1])
    (image, passed), same = BatchHook(bt)((batch, sex), target, train=False)
    assert torch.equal(image, bt(batch)) and passed is sex and same is target


def test_masks_follow_the_image_through_crop_and_flips():
    pre = radiologynet.Preprocessing(input_size=24)
    aug = Augmentation(
        flip_p=0.5, vflip_p=0.5, degrees=0.0, brightness=None, contrast=None, crop=24
    )
    bt = BatchHook(BatchTransform(pre, augment=aug, resize=False, in_chans=1), masks=True)
    image = torch.rand(8, 1, 40, 40)
    mask = (image > 0.5).float()
    out, out_mask = bt(image, mask, train=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == out_mask.shape == (8, 1, 24, 24)
    torch.testing.assert_close(out_mask, (out > 0.5).float())
    evaluated, same_mask = bt(image, mask, train=False)
    assert torch.equal(evaluated, image) and torch.equal(same_mask, mask)


# --- the model card's statement about timm's transforms ---------------------------------


def _timm_transform(record):
    from timm.data import create_transform, resolve_data_config

    return create_transform(**resolve_data_config(pretrained_cfg=record.pretrained_cfg()))


def _both(record, gray):
    from PIL import Image as PILImage

    ours = transforms.for_weights(record)(gray)
    theirs = _timm_transform(record)(PILImage.fromarray(gray).convert("RGB"))
    return (ours - theirs).abs()


def test_model_card_timm_statement_holds():
    from radiologynet.models._card import TIMM_SHRINK_MAX_DIFF

    record = radiologynet.get_weights("resnet18.radiologynet")
    rng = np.random.default_rng(0)
    exact = rng.integers(0, 256, (224, 150), dtype=np.uint8)
    assert float(_both(record, exact).max()) == 0.0
    small = rng.integers(0, 256, (100, 80), dtype=np.uint8)
    assert float(_both(record, small).max()) <= 1 / 255 + 1e-6
    noise = rng.integers(0, 256, (512, 400), dtype=np.uint8)
    shrunk = float(_both(record, noise).max())
    assert 0.1 < shrunk <= TIMM_SHRINK_MAX_DIFF["noise"] + 0.02
    # ImageNet records: timm fills the letterbox border with the mean colour
    imagenet = radiologynet.get_weights("resnet18.imagenet")
    diff = _both(imagenet, exact)
    border, inside = diff[..., :37], diff[..., 37 : 37 + 150]
    assert float(inside.max()) == 0.0
    assert float(border.max()) == pytest.approx(0.485 / 0.229, abs=0.01)
    card = radiologynet.models._card.render_model_card(
        {
            "architecture": "resnet18",
            "num_classes": 1000,
            "pretrained_cfg": imagenet.pretrained_cfg(),
        },
        record=imagenet,
    )
    assert "mean colour" in card and "create_transform`) applies exactly" not in card
    assert f"{TIMM_SHRINK_MAX_DIFF['noise']} on pixel noise" in card


def test_model_card_shrink_difference_on_a_real_radiograph(real_radiographs):
    from radiologynet.models._card import TIMM_SHRINK_MAX_DIFF

    record = radiologynet.get_weights("resnet18.radiologynet")
    worst = max(float(_both(record, gray).max()) for _, gray in real_radiographs)
    assert 0.1 < worst <= TIMM_SHRINK_MAX_DIFF["radiograph"] + 0.02


def test_user_errors_name_what_to_pass(tmp_path):
    record = radiologynet.get_weights("resnet18.imagenet")
    with pytest.raises(radiologynet.errors.InvalidArgumentError, match="2 input channels"):
        BatchTransform(record.preprocessing, in_chans=2)
    with pytest.raises(radiologynet.errors.InvalidArgumentError, match="config.json"):
        transforms.read_preprocessing(tmp_path / "model.pth")
    assert transforms.read_preprocessing(
        tmp_path / "model.pth", input_size=64
    ) == radiologynet.Preprocessing(input_size=64)


def test_read_preprocessing_round_trips_every_record_through_its_timm_cfg():
    for record in radiologynet.list_weights():
        assert transforms.read_preprocessing(record.pretrained_cfg()) == record.preprocessing
        assert (
            transforms.read_preprocessing({"pretrained_cfg": record.pretrained_cfg()})
            == record.preprocessing
        )


def test_a_tasks_own_augmentation_policy_runs_inside_the_one_batch_transform():
    """LUNA16's paper augmentation (or any ``fn(image, mask, generator)``) plugs into
    BatchTransform; luna_batch_transform crops first and keeps masks with images."""
    from radiologynet.protocol.tasks.luna16 import luna_batch_transform

    seen = []

    def mirror(image, mask, generator):
        seen.append(tuple(image.shape))
        return image.flip(-1), mask.flip(-1)

    record = radiologynet.get_weights("resnet18.imagenet")
    bt = luna_batch_transform(record.preprocessing, in_chans=1, crop=16, augmentation=mirror)
    image = torch.rand(4, 1, 40, 40)
    mask = (image > 0.5).float()
    out, out_mask = bt(image, mask, train=True, generator=torch.Generator().manual_seed(0))
    assert seen == [(4, 1, 16, 16)] and out.shape == out_mask.shape == (4, 1, 16, 16)
    mean, std = transforms.channel_mean_std(record.preprocessing.mean, record.preprocessing.std, 1)
    torch.testing.assert_close(out_mask, ((out * std[0] + mean[0]) > 0.5).float())
    evaluated, _ = bt(image, mask, train=False)
    assert evaluated.shape == (4, 1, 40, 40) and len(seen) == 1  # no crop, no policy
    crop_only = luna_batch_transform(in_chans=1, crop=16, augment=False, augmentation=mirror)
    assert crop_only(image, mask, train=True)[0].shape == (4, 1, 16, 16) and len(seen) == 1
