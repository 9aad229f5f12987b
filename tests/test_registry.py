"""The registry and the weight records: one source of truth, consistent with timm."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import timm

import radiologynet
from radiologynet.errors import UnknownModelError, UnknownWeightsError
from radiologynet.models._registry import ARCHITECTURES
from radiologynet.models._weights import MODALITY_VARIANTS

PAPER_NAMES = [
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16",
    "efficientnet_b3",
    "efficientnet_b4",
    "inception_v3",
    "densenet121",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
]


def test_the_ten_architectures_under_the_papers_names():
    assert radiologynet.list_models() == PAPER_NAMES


@pytest.mark.parametrize("arch", PAPER_NAMES)
def test_architecture_matches_timm(arch):
    spec = ARCHITECTURES[arch]
    assert spec.timm_name in timm.list_models()
    model = timm.create_model(spec.timm_name, pretrained=False, **spec.model_args_dict)
    modules = dict(model.named_modules())
    assert spec.first_conv in modules, "first_conv must name a module (in_chans adaptation)"
    assert spec.classifier in modules, "classifier must name a module (head reset)"
    assert spec.gradcam_layer in modules, "gradcam_layer must name a module"
    assert model.pretrained_cfg["first_conv"] == spec.first_conv
    assert model.pretrained_cfg["classifier"] == spec.classifier


def test_aliases_resolve_to_the_same_architecture():
    assert radiologynet.get_architecture("mobilenetv3_small_100").name == "mobilenet_v3_small"
    assert radiologynet.get_architecture("ResNet50").name == "resnet50"
    assert radiologynet.get_architecture("efficientnetb4").name == "efficientnet_b4"


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(UnknownModelError, match="resnet50"):
        radiologynet.get_architecture("resnet51")


def test_weight_tags_per_architecture():
    tags = {a: {r.tag for r in radiologynet.list_weights(a)} for a in PAPER_NAMES}
    for arch in PAPER_NAMES:
        assert {"radiologynet", "imagenet"} <= tags[arch]
    for tag, archs in MODALITY_VARIANTS.items():
        for arch in PAPER_NAMES:
            assert (tag in tags[arch]) == (arch in archs)
    assert MODALITY_VARIANTS["radiologynet-mr"] == ("mobilenet_v3_small", "resnet50")
    assert MODALITY_VARIANTS["radiologynet-ct"] == ("resnet50",)
    assert len(MODALITY_VARIANTS["radiologynet-cr"]) == 6


def test_records_are_frozen_and_complete():
    for record in radiologynet.list_weights():
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.tag = "x"  # type: ignore[misc]
        assert record.hub_repo_id == f"radiologynet/{record.arch}.{record.tag}"
        assert record.preprocessing.input_size == ARCHITECTURES[record.arch].input_size
        assert record.license
        if record.tag.startswith("radiologynet"):
            assert record.num_classes == 36 and len(record.label_names) == 36
            assert record.preprocessing.mean is None and record.preprocessing.std is None
        if record.tag == "radiologynet":
            assert record.released
            assert record.source_url.endswith(f"{record.architecture.original_name}.tar.gz")
        if record.tag in MODALITY_VARIANTS:
            assert not record.released
        if record.tag == "imagenet":
            # torchvision's inception_v3(weights=...) forces transform_input: [-1, 1]
            half = record.arch == "inception_v3"
            expected = (0.5, 0.5, 0.5) if half else (0.485, 0.456, 0.406)
            assert record.preprocessing.mean == expected
            assert record.preprocessing.std == ((0.5,) * 3 if half else (0.229, 0.224, 0.225))
            assert record.source_url.startswith("https://download.pytorch.org/models/")
            assert record.torchvision_weights in ("IMAGENET1K_V1", "IMAGENET1K_V2")
            assert record.torchvision_weights in record.description
        # not published yet: no pin, resolved from the source
        assert not record.published


def test_input_sizes_follow_the_paper():
    sizes = {a.name: a.input_size for a in ARCHITECTURES.values()}
    assert sizes["efficientnet_b3"] == 300 and sizes["efficientnet_b4"] == 380
    assert sizes["inception_v3"] == 299
    assert {s for n, s in sizes.items() if not n.startswith(("eff", "incep"))} == {224}


def test_paper_results_attached_to_records():
    results = radiologynet.get_weights("resnet50.radiologynet").results
    assert {r.task for r in results} == {"btmr"}
    f1 = [r for r in results if r.metric == "f1" and r.init == "radiologynet"]
    assert f1 and f1[0].value == pytest.approx(98.9)  # the paper reports F1 in percent


def test_tag_and_version_lookup():
    assert radiologynet.get_weights("resnet50.radiologynet@v1").version == "v1"
    assert radiologynet.get_weights("resnet50", tag="imagenet").tag == "imagenet"
    with pytest.raises(UnknownWeightsError, match="Valid tags for vgg16: imagenet, radiologynet"):
        radiologynet.get_weights("vgg16.radiologynet-mr")
    with pytest.raises(UnknownWeightsError, match="Valid versions: v1"):
        radiologynet.get_weights("resnet50.radiologynet@v9")
    with pytest.raises(UnknownWeightsError):
        radiologynet.get_weights("resnet50.imagenet21k")


def test_pretrained_cfg_only_has_keys_timm_accepts():
    from timm.models import PretrainedCfg

    for record in radiologynet.list_weights():
        PretrainedCfg(**record.pretrained_cfg())  # raises TypeError on an unknown key


# the authors' torchvision heads: (dropout p in the head, how many, stochastic depth)
PAPER_DROPOUT = {
    "resnet18": (None, 0, 0.0),
    "resnet34": (None, 0, 0.0),
    "resnet50": (None, 0, 0.0),
    "densenet121": (None, 0, 0.0),
    "vgg16": (0.5, 2, 0.0),
    "inception_v3": (0.5, 1, 0.0),
    "efficientnet_b3": (0.2, 1, 0.2),
    "efficientnet_b4": (0.2, 1, 0.2),
    "mobilenet_v3_small": (0.2, 1, 0.0),
    "mobilenet_v3_large": (0.2, 1, 0.0),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_paper_regularisation_reaches_the_built_model(name, monkeypatch):
    """The registry's dropout / stochastic depth, passed to timm as the protocol runner
    does, gives the built model the authors' dropout: modules (VGG16, InceptionV3) or
    timm's functional dropout in forward_head (EfficientNet, MobileNetV3)."""
    import torch

    from radiologynet.train.heads import build_model

    arch = ARCHITECTURES[name]
    p, count, drop_path = PAPER_DROPOUT[name]
    assert (arch.paper_drop_rate, arch.paper_drop_path_rate) == (p or 0.0, drop_path)
    model = build_model(name, None, kind="binary", num_classes=1, **arch.paper_regularisation)
    modules = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    seen = list(modules)
    original = torch.nn.functional.dropout

    def recording(x, p=0.5, training=True, inplace=False):
        if p > 0:
            seen.append(p)
        return original(x, p, training, inplace)

    monkeypatch.setattr(torch.nn.functional, "dropout", recording)
    functional = len(seen)
    model.train()
    size = 75 if name == "inception_v3" else 64
    with torch.no_grad():
        model.forward_head(model.forward_features(torch.rand(2, 3, size, size)))
    functional_calls = seen[functional:]
    if not modules:  # timm's EfficientNet / MobileNetV3 call F.dropout themselves
        modules = functional_calls
    assert modules == [p] * count if p else not modules
    depths = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    if drop_path:  # torchvision's linear rule: the last block gets 0.2 * (n - 1) / n
        assert max(depths) == pytest.approx(drop_path * len(depths) / (len(depths) + 1))
    else:
        assert not depths


def test_imagenet_records_are_torchvision_0_15_defaults():
    """The paper used torchvision 0.15.2's ``.DEFAULT``: V2 for ResNet50 and
    MobileNetV3Large, V1 for the other eight."""
    from radiologynet.models._weights import IMAGENET_NUM_CLASSES

    v2 = {
        r.arch
        for r in radiologynet.list_weights()
        if r.tag == "imagenet" and r.torchvision_weights == "IMAGENET1K_V2"
    }
    assert v2 == {"resnet50", "mobilenet_v3_large"}
    resnet50 = radiologynet.get_weights("resnet50.imagenet")
    assert resnet50.source_url.endswith("/resnet50-11ad3fa6.pth")
    assert resnet50.timm_hub_id == "timm/resnet50.tv2_in1k"
    large = radiologynet.get_weights("mobilenet_v3_large.imagenet")
    assert large.source_url.endswith("/mobilenet_v3_large-5c1a4163.pth")
    assert large.timm_hub_id is None  # timm carries no torchvision copy: converted
    assert radiologynet.get_weights("resnet18.imagenet").timm_hub_id == "timm/resnet18.tv_in1k"
    assert resnet50.num_classes == IMAGENET_NUM_CLASSES


def test_every_source_but_the_authors_server_is_https():
    from radiologynet.models._weights import ORIGINAL_BASE_URL

    for record in radiologynet.list_weights():
        if record.source_url and not record.source_url.startswith(ORIGINAL_BASE_URL):
            assert record.source_url.startswith("https://"), record.full_name


@pytest.fixture
def restore_records():
    from radiologynet.models import _weights as weights

    saved = dict(weights._RECORDS)
    yield
    weights._RECORDS.clear()
    weights._RECORDS.update(saved)


def test_register_weights_with_an_alias_stores_the_registry_name(restore_records):
    base = radiologynet.get_weights("resnet50.radiologynet")
    stored = radiologynet.register_weights(dataclasses.replace(base, arch="ResNet50", tag="mine"))
    assert stored.arch == "resnet50"
    assert radiologynet.get_weights("resnet50.mine").tag == "mine"
    assert any(r.name == "resnet50.mine" for r in radiologynet.list_weights())
    assert [r.tag for r in radiologynet.list_weights("resnet50")].count("mine") == 1


def test_list_weights_puts_the_latest_version_first(restore_records):
    base = radiologynet.get_weights("resnet18.radiologynet")
    for version in ("v2", "v10"):
        radiologynet.register_weights(dataclasses.replace(base, version=version))
    versions = [r.version for r in radiologynet.list_weights("resnet18") if r.tag == "radiologynet"]
    assert versions == ["v10", "v2", "v1"]
    assert radiologynet.get_weights("resnet18.radiologynet").version == "v10"


def test_resolve_weights_arg_is_the_one_reading_of_weights(tmp_path, monkeypatch):
    from radiologynet.errors import WeightsNotFoundError
    from radiologynet.models._weights import looks_like_path, resolve_weights_arg

    monkeypatch.chdir(tmp_path)
    for random in (None, "random", "None", "baseline"):
        assert resolve_weights_arg("resnet18", random) is None
    assert resolve_weights_arg("resnet18", "imagenet").tag == "imagenet"
    assert resolve_weights_arg("ResNet18", "radiologynet@v1").version == "v1"
    assert resolve_weights_arg("resnet18", "resnet18.imagenet").tag == "imagenet"
    (tmp_path / "imagenet").mkdir()  # a tag wins over a same-named folder
    assert resolve_weights_arg("resnet18", "imagenet").tag == "imagenet"
    (tmp_path / "mine").mkdir()  # an existing folder with no separator is a path
    assert resolve_weights_arg("resnet18", "mine") == Path("mine")
    assert resolve_weights_arg("resnet18", tmp_path / "mine") == tmp_path / "mine"
    for missing in ("/nope/w", "w.pth", "./w", "~/nope-w"):
        assert looks_like_path(missing)
        with pytest.raises(WeightsNotFoundError, match="No such file or folder"):
            resolve_weights_arg("resnet18", missing)
    with pytest.raises(UnknownWeightsError, match="Valid tags for resnet18"):
        resolve_weights_arg("resnet18", "imagenet21k")
    with pytest.raises(UnknownWeightsError, match="are for resnet50"):
        resolve_weights_arg("resnet18", radiologynet.get_weights("resnet50.imagenet"))


def test_full_weight_names_take_any_name_of_the_architecture(tmp_path, monkeypatch):
    """resolve_weights_arg reads "arch.tag[@version]" as get_weights does: with the
    architecture's timm or authors' name too, not only its registry name."""
    from radiologynet.models._weights import resolve_weights_arg

    monkeypatch.chdir(tmp_path)
    record = radiologynet.get_weights("mobilenet_v3_small.radiologynet")
    for name in (
        "mobilenetv3_small_100.radiologynet",  # timm's name
        "MobileNetV3Small.radiologynet@v1",  # the authors' name
        "mobilenet_v3_small.radiologynet@v1",
    ):
        assert radiologynet.get_weights(name) == record
        assert resolve_weights_arg("mobilenet_v3_small", name) == record
    with pytest.raises(UnknownWeightsError, match="are for resnet50"):
        resolve_weights_arg("resnet18", "ResNet50.imagenet")
    (tmp_path / "resnet18.pth").write_bytes(b"")  # a file named like an architecture
    assert resolve_weights_arg("resnet18", "resnet18.pth") == Path("resnet18.pth")


@pytest.mark.parametrize("random", ["", "  ", "null", "NULL", "none", "baseline", "random"])
def test_every_random_spelling_is_random_init_never_the_current_folder(
    random, tmp_path, monkeypatch
):
    """One alias set: resolve_weights_arg and the report's normalise_init agree; an empty
    string is random initialisation, not Path(".")."""
    from radiologynet.analysis.report.results import normalise_init
    from radiologynet.models._weights import (
        RANDOM_INIT,
        is_random_init,
        looks_like_path,
        resolve_weights_arg,
    )

    monkeypatch.chdir(tmp_path)
    assert resolve_weights_arg("resnet18", random) is None
    assert is_random_init(random) and not looks_like_path(random)
    assert normalise_init(random) == RANDOM_INIT
