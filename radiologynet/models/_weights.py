"""One typed, frozen record per weight: where it lives, what it expects, what it is.

A weight is named ``<arch>.<tag>[@<version>]`` (``resnet50.radiologynet@v1``). The tags:

- ``radiologynet``: the multi-modality RadiologyNET weights (all ten architectures);
- ``radiologynet-mr`` / ``-cr`` / ``-ct``: the paper's single-modality variants (described,
  never released by the authors);
- ``imagenet``: the torchvision ImageNet weights the paper compared against.

``weights=None`` (random initialisation, the paper's baseline) has no record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any

from radiologynet.errors import UnknownModelError, UnknownWeightsError, WeightsNotFoundError
from radiologynet.models._preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from radiologynet.models._registry import ARCHITECTURES, Architecture, get_architecture
from radiologynet.paper import PAPER, PAPER_DOI, PaperResult, paper_results

#: Every published weight lives at ``f"{HUB_ORG}/{arch}.{tag}"`` on the Hugging Face Hub.
HUB_ORG = "radiologynet"
#: The authors' download server (one ``<Name>.tar.gz`` per architecture).
ORIGINAL_BASE_URL = "http://radiologynet.riteh.hr/models"


#: The 36 pseudo-label classes of pretraining. The authors identify them by cluster
#: number only (50 clusters, 14 excluded as incoherent); the names are therefore indices.
RADIOLOGYNET_LABELS: tuple[str, ...] = tuple(f"cluster_{i:02d}" for i in range(36))
IMAGENET_NUM_CLASSES = 1000


@dataclass(frozen=True)
class WeightRecord:
    """Everything known about one weight.

    Attributes:
        arch: the architecture name (a key of :data:`radiologynet.models._registry.ARCHITECTURES`).
        tag: ``radiologynet``, ``radiologynet-mr``, ``imagenet``, ...
        version: release version (``v1``); ``arch.tag@version`` pins it.
        description: one line on what the weight is.
        hub_repo_id: where the converted weight lives (or will live) on the Hub.
        hub_revision: the pinned Hub commit; ``None`` while the weight is not published.
        filename: the weight file inside the Hub repo / weights folder.
        sha256: of ``filename`` at ``hub_revision``; ``None`` while not published (the
            cache then records the converted file's hash on first use).
        source_url: where the unconverted original comes from (the authors' archive,
            or torchvision's ImageNet checkpoint); ``None`` when there is none.
        source_member: the file inside ``source_url`` when it is an archive.
        source_sha256 / source_size: the sha256 and byte size of the file at
            ``source_url``; a download that differs is refused. ``None`` while unknown
            (the authors publish no checksums; see docs/weights.md for filling them in).
        timm_hub_id: for ImageNet weights timm carries, the Hub repo of timm's copy.
        torchvision_weights: for ImageNet weights, which torchvision weight enum member
            this is (``"IMAGENET1K_V2"``); the paper used torchvision 0.15.2's ``.DEFAULT``.
        preprocessing: what the weight expects as input.
        num_classes / label_names: the pretraining head.
        modalities: the imaging modalities of the pretraining data.
        training_data: a sentence on the pretraining data and its limits.
        license: SPDX-like identifier; ``license_note`` says more where needed.
        paper: the publication the weight comes from (``""`` for weights of your own, which
            then carry no paper results).
        released: ``False`` for weights the paper describes that were never published.
    """

    arch: str
    tag: str
    version: str
    description: str
    preprocessing: Preprocessing
    num_classes: int
    label_names: tuple[str, ...]
    modalities: tuple[str, ...]
    training_data: str
    license: str
    license_note: str = ""
    hub_repo_id: str = ""
    hub_revision: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    source_url: str | None = None
    source_member: str | None = None
    source_sha256: str | None = None
    source_size: int | None = None
    timm_hub_id: str | None = None
    torchvision_weights: str | None = None
    paper: str = PAPER
    released: bool = True
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """``arch.tag`` (without the version)."""
        return f"{self.arch}.{self.tag}"

    @property
    def full_name(self) -> str:
        """``arch.tag@version``."""
        return f"{self.name}@{self.version}"

    def __repr__(self) -> str:
        # one line, as torchvision's weight enums print (the fields are attributes)
        return f"WeightRecord({self.full_name!r})"

    @property
    def architecture(self) -> Architecture:
        """The registry entry of this weight's architecture."""
        return ARCHITECTURES[self.arch]

    @property
    def published(self) -> bool:
        """Whether the converted weight is pinned on the Hub (revision and sha256 known)."""
        return self.hub_revision is not None and self.sha256 is not None

    @property
    def source_sha256_prefix(self) -> str | None:
        """The sha256 prefix torchvision writes into its checkpoint names
        (``resnet50-11ad3fa6.pth``), checked like torchvision's ``check_hash``."""
        if not self.source_url:
            return None
        match = re.search(r"-([0-9a-f]{8,64})\.pth$", self.source_url)
        return match.group(1) if match else None

    @property
    def results(self) -> tuple[PaperResult, ...]:
        """The paper's downstream results for this architecture (all initialisations);
        none for weights that come from no paper (``paper=""``: your own)."""
        if not self.paper:
            return ()
        return tuple(r for r in paper_results() if r.model == self.arch)

    def pretrained_cfg(self) -> dict[str, Any]:
        """A timm ``pretrained_cfg`` (only keys timm accepts) describing this weight
        (:func:`timm_pretrained_cfg`)."""
        return timm_pretrained_cfg(self.architecture, self)

    @property
    def status(self) -> str:
        """Where the weight comes from, in the order :func:`radiologynet.models._hub.resolve`
        tries (``radiologynet list`` and ``info`` and docs/models.md print this)."""
        if not self.released:
            return "not released by the authors"
        if self.published:
            return f"on the Hub, pinned {self.hub_revision[:10]}"
        if self.timm_hub_id:
            return f"timm's copy ({self.timm_hub_id}), else converted from its source"
        return "converted from its source on first use"

    def summary(self) -> str:
        """One line: name, availability and description."""
        return f"{self.full_name:42s} [{self.status}] {self.description}"


_RADIOLOGYNET_DATA = (
    "About 1.9 million radiology images (mostly CT, MR and CR/DX) from one hospital "
    "centre (Rijeka, Croatia), pseudo-labelled into 50 clusters from DICOM tags, images "
    "and text, 36 coherent clusters kept. Single-centre data: expect a domain shift "
    "on scanners, populations and protocols the hospital did not have."
)
_MODALITY_DATA = {
    "mr": ("MR", "The MR images of the RadiologyNET dataset only."),
    "cr": ("CR", "The CR/DX radiographs of the RadiologyNET dataset only."),
    "ct": ("CT", "The CT images of the RadiologyNET dataset only."),
}
#: The single-modality variants the paper evaluated, per tag.
MODALITY_VARIANTS: dict[str, tuple[str, ...]] = {
    "radiologynet-mr": ("mobilenet_v3_small", "resnet50"),
    "radiologynet-cr": (
        "densenet121",
        "resnet34",
        "efficientnet_b3",
        "inception_v3",
        "mobilenet_v3_large",
        "resnet18",
    ),
    "radiologynet-ct": ("resnet50",),
}
_RADIOLOGYNET_LICENSE_NOTE = (
    "The authors publish these weights beside their GPL-3.0 repository "
    "(AIlab-RITEH/RadiologyNET-TL-models) without a separate weights licence."
)
#: The torchvision weight the paper's ImageNet runs used: torchvision 0.15.2's ``.DEFAULT``,
#: which is IMAGENET1K_V2 for these two architectures and IMAGENET1K_V1 for the others.
_TORCHVISION_V2 = frozenset({"resnet50", "mobilenet_v3_large"})
_TORCHVISION_MODELS = "https://download.pytorch.org/models"
#: torchvision's checkpoint of each architecture's ``.DEFAULT`` ImageNet weight.
_TORCHVISION_IMAGENET_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-11ad3fa6.pth",  # IMAGENET1K_V2
    "vgg16": "vgg16-397923af.pth",
    "efficientnet_b3": "efficientnet_b3_rwightman-b3899882.pth",
    "efficientnet_b4": "efficientnet_b4_rwightman-23ab8bcd.pth",
    "inception_v3": "inception_v3_google-0cc3c7bd.pth",
    "densenet121": "densenet121-a639ec97.pth",
    "mobilenet_v3_small": "mobilenet_v3_small-047dcff4.pth",
    "mobilenet_v3_large": "mobilenet_v3_large-5c1a4163.pth",  # IMAGENET1K_V2
}
#: timm's own copies of the same torchvision weights (safetensors on the Hub), preferred
#: over converting torchvision's pickle; the others are converted from torchvision.
_TIMM_TV_TAGS = {
    "resnet18": "tv_in1k",
    "resnet34": "tv_in1k",
    "resnet50": "tv2_in1k",
    "vgg16": "tv_in1k",
    "inception_v3": "tv_in1k",
    "densenet121": "tv_in1k",
}


def torchvision_default_weights(arch: str) -> str:
    """The torchvision ImageNet weight (``"IMAGENET1K_V1"`` / ``"IMAGENET1K_V2"``) the
    paper used for ``arch``: torchvision 0.15.2's ``.DEFAULT``."""
    return "IMAGENET1K_V2" if get_architecture(arch).name in _TORCHVISION_V2 else "IMAGENET1K_V1"


def hub_repo_id(arch: str, tag: str) -> str:
    """The Hub repository of ``arch.tag`` (one pattern, from :data:`HUB_ORG`)."""
    return f"{HUB_ORG}/{arch}.{tag}"


def _radiologynet(arch: Architecture) -> WeightRecord:
    return WeightRecord(
        arch=arch.name,
        tag="radiologynet",
        version="v1",
        description=f"{arch.original_name} pretrained on RadiologyNET (multi-modality, 36 "
        "pseudo-label classes)",
        preprocessing=Preprocessing(input_size=arch.input_size),
        num_classes=36,
        label_names=RADIOLOGYNET_LABELS,
        modalities=("CT", "MR", "CR", "DX"),
        training_data=_RADIOLOGYNET_DATA,
        license="gpl-3.0",
        license_note=_RADIOLOGYNET_LICENSE_NOTE,
        hub_repo_id=hub_repo_id(arch.name, "radiologynet"),
        source_url=f"{ORIGINAL_BASE_URL}/{arch.original_name}.tar.gz",
        source_member=f"{arch.original_name}.pth",
    )


def _modality(arch: Architecture, tag: str) -> WeightRecord:
    modality, data = _MODALITY_DATA[tag.rsplit("-", 1)[1]]
    return WeightRecord(
        arch=arch.name,
        tag=tag,
        version="v1",
        description=f"{arch.original_name} pretrained on the {modality} images of "
        "RadiologyNET only (described in the paper, not released)",
        preprocessing=Preprocessing(input_size=arch.input_size),
        num_classes=36,
        label_names=RADIOLOGYNET_LABELS,
        modalities=(modality,),
        training_data=data,
        license="gpl-3.0",
        license_note=_RADIOLOGYNET_LICENSE_NOTE,
        hub_repo_id=hub_repo_id(arch.name, tag),
        released=False,
    )


#: The ImageNet weights whose torchvision builder rescales its input: torchvision's
#: ``inception_v3(weights=...)`` forces ``transform_input=True``, which maps an ImageNet
#: mean/std-normalised input to ``(x - 0.5) / 0.5``, so the network (and the authors'
#: ImageNet InceptionV3 runs) saw [-1, 1]; timm's own ``inception_v3.tv_in1k`` config says
#: the same (mean = std = 0.5). timm's model has no ``transform_input``: the record's
#: mean/std give it that input.
_HALF_NORMALISED = frozenset({"inception_v3"})
HALF_MEAN_STD = (0.5, 0.5, 0.5)


def _imagenet(arch: Architecture) -> WeightRecord:
    tv_weights = torchvision_default_weights(arch.name)
    timm_tag = _TIMM_TV_TAGS.get(arch.name)
    half = arch.name in _HALF_NORMALISED
    mean, std = (HALF_MEAN_STD, HALF_MEAN_STD) if half else (IMAGENET_MEAN, IMAGENET_STD)
    return WeightRecord(
        arch=arch.name,
        tag="imagenet",
        version="v1",
        description=f"torchvision's ImageNet-1k {arch.torchvision_name} weights ({tv_weights},"
        " torchvision 0.15.2's DEFAULT), the paper's ImageNet comparison",
        preprocessing=Preprocessing(input_size=arch.input_size, mean=mean, std=std),
        num_classes=IMAGENET_NUM_CLASSES,
        label_names=(),
        modalities=(),
        training_data="ImageNet-1k (1.28 million natural photographs).",
        license="bsd-3-clause",
        license_note="torchvision's weights; ImageNet's terms of access apply to the data.",
        hub_repo_id=hub_repo_id(arch.name, "imagenet"),
        source_url=f"{_TORCHVISION_MODELS}/{_TORCHVISION_IMAGENET_FILES[arch.name]}",
        timm_hub_id=f"timm/{arch.timm_name}.{timm_tag}" if timm_tag else None,
        torchvision_weights=tv_weights,
    )


def _build_records() -> dict[tuple[str, str, str], WeightRecord]:
    records: list[WeightRecord] = []
    for arch in ARCHITECTURES.values():
        records.append(_radiologynet(arch))
        for tag, archs in MODALITY_VARIANTS.items():
            if arch.name in archs:
                records.append(_modality(arch, tag))
        records.append(_imagenet(arch))
    return {(r.arch, r.tag, r.version): r for r in records}


_RECORDS: dict[tuple[str, str, str], WeightRecord] = _build_records()
#: How result folders and reports name random initialisation (the paper's "baseline").
RANDOM_INIT = "random"
#: Every spelling of random initialisation, compared stripped and lower-cased: the
#: paper's ``baseline``, ``none``/``null`` (and an empty string) as JSON, YAML and CSV
#: cells write a missing value. The alias set of the package (``weights=``,
#: ``--weights``, the protocol runner's inits, the report's ``normalise_init``).
RANDOM_TAGS = frozenset({RANDOM_INIT, "none", "null", "baseline", ""})


def is_random_init(weights: object) -> bool:
    """Whether a ``weights=``/init argument means random initialisation: ``None`` or
    one of :data:`RANDOM_TAGS` (an empty string too, never the current directory)."""
    return weights is None or (isinstance(weights, str) and weights.strip().lower() in RANDOM_TAGS)


def register_weights(record: WeightRecord) -> WeightRecord:
    """Add (or replace) a weight record, e.g. one of your own published weights.

    The architecture may be given by any of its names (``"ResNet50"``, ``"resnet50"``);
    the record is stored under the registry name. Returns the stored record.
    """
    arch = get_architecture(record.arch).name
    if arch != record.arch:
        record = replace(record, arch=arch)
    _RECORDS[(record.arch, record.tag, record.version)] = record
    return record


def split_name(name: str) -> tuple[str, str | None, str | None]:
    """``"resnet50.radiologynet@v1"`` -> ``("resnet50", "radiologynet", "v1")``."""
    version = None
    if "@" in name:
        name, version = name.split("@", 1)
    tag = None
    if "." in name:
        name, tag = name.split(".", 1)
    return name, tag, version


def list_weights(arch: str | None = None) -> list[WeightRecord]:
    """Every weight record, grouped by architecture (the paper's order) and tag, the
    latest version of each first; or those of one architecture."""
    order = list(ARCHITECTURES)
    records = sorted(
        _RECORDS.values(), key=lambda r: (order.index(r.arch), r.tag, _descending(r.version))
    )
    if arch is None:
        return records
    name = get_architecture(arch).name
    return [r for r in records if r.arch == name]


def _descending(version: str) -> tuple[int, ...]:
    return tuple(-part for part in _version_key(version))


def is_weight_tag(text: str) -> bool:
    """Whether ``text`` is a weight tag of the zoo (``imagenet``, ``radiologynet-ct``,
    ``radiologynet@v1``, ...), for any architecture."""
    return text.split("@", 1)[0] in {record.tag for record in _RECORDS.values()}


def looks_like_path(text: str | os.PathLike[str]) -> bool:
    """Whether a ``weights=`` argument means a file or folder rather than a weight tag:
    a path object, or text that is no known tag and has a path separator, starts with
    ``.`` or ``~``, has a file suffix (``w.pth``), or exists. A tag wins over a
    same-named folder in the working directory."""
    if isinstance(text, os.PathLike):
        return True
    text = text.strip()
    if is_weight_tag(text) or is_random_init(text):
        return False
    return (
        "/" in text
        or os.sep in text
        or text.startswith((".", "~"))
        or bool(Path(text).suffix)
        or Path(text).exists()
    )


def _is_weight_name(text: str) -> bool:
    """Whether ``text`` is ``arch.tag[@version]`` with ``arch`` any name of a registry
    architecture (:func:`get_architecture`'s aliases) and ``tag`` a weight tag, which
    :func:`get_weights` then reads; ``"resnet50.pth"`` or ``"dir/x.radiologynet"`` are
    not."""
    name_arch, name_tag, _ = split_name(text)
    if name_tag is None or not is_weight_tag(name_tag):
        return False
    try:
        get_architecture(name_arch)
    except UnknownModelError:
        return False
    return True


def resolve_weights_arg(
    arch: str | Architecture, weights: str | os.PathLike[str] | WeightRecord | None
) -> WeightRecord | Path | None:
    """The reading of a ``weights=`` argument (``create_model``, ``create_unet``, the
    protocol runner, the CLI's ``--weights``).

    Returns:
        ``None`` for random initialisation (``None`` or one of :data:`RANDOM_TAGS`:
        ``"random"``, ``"none"``, ``"null"``, ``"baseline"``, ``""``), the
        :class:`WeightRecord` of a tag (``"imagenet"``, ``"radiologynet@v1"``), full name
        (``"resnet50.radiologynet@v1"``, with any name of the architecture:
        ``"ResNet50.radiologynet"``) or record, or the :class:`~pathlib.Path` of an existing
        file or folder (see :func:`looks_like_path`).

    Raises:
        WeightsNotFoundError: a path that does not exist ("no such file or folder").
        UnknownWeightsError: a tag that does not exist for ``arch`` (the message lists the
            valid ones), or a record of another architecture.
    """
    spec = arch if isinstance(arch, Architecture) else get_architecture(arch)
    if is_random_init(weights):
        return None
    if isinstance(weights, WeightRecord):
        if get_architecture(weights.arch).name != spec.name:
            raise UnknownWeightsError(
                f"Weights {weights.full_name} are for {weights.arch}, not {spec.name}: "
                f"use {weights.arch!r} or weights of {spec.name}."
            )
        return weights
    text = os.fspath(weights).strip()
    if isinstance(weights, str) and _is_weight_name(text):
        return resolve_weights_arg(spec, get_weights(text))  # a full "arch.tag" name
    if looks_like_path(weights):
        path = Path(text).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(
                f"No such file or folder: {text}. Pass an existing weights folder "
                "(config.json + model.safetensors), .safetensors file or original "
                "checkpoint (.pth, .tar.gz), or a weight tag (`radiologynet list`)."
            )
        return path
    return get_weights(spec.name, tag=text)


def get_weights(name: str, tag: str | None = None, version: str | None = None) -> WeightRecord:
    """The record of ``arch.tag[@version]``; the latest version when none is given.

    Raises:
        UnknownModelError: an unknown architecture.
        UnknownWeightsError: a tag or version that does not exist for the architecture;
            the message lists the valid ones.
    """
    arch_name, name_tag, name_version = split_name(name)
    arch = get_architecture(arch_name)
    tag = tag or name_tag
    version = version or name_version
    if tag is not None and "@" in tag:
        tag, version = tag.split("@", 1)
    if tag is None:
        tag = "radiologynet"
    candidates = [r for r in _RECORDS.values() if r.arch == arch.name and r.tag == tag]
    if not candidates:
        valid = sorted({r.tag for r in _RECORDS.values() if r.arch == arch.name})
        raise UnknownWeightsError(
            f"No weights {tag!r} for {arch.name}. Valid tags for {arch.name}: "
            f"{', '.join(valid)}, or None for random initialisation (a path to a weights "
            "folder or file also works)."
        )
    if version is None:
        return max(candidates, key=lambda r: _version_key(r.version))
    for record in candidates:
        if record.version == version:
            return record
    raise UnknownWeightsError(
        f"No version {version!r} of {arch.name}.{tag}. Valid versions: "
        f"{', '.join(sorted(r.version for r in candidates))}."
    )


def _version_key(version: str) -> tuple[int, ...]:
    digits = version.lstrip("v").split(".")
    return tuple(int(d) if d.isdigit() else 0 for d in digits)


def with_pin(record: WeightRecord, revision: str, sha256: str) -> WeightRecord:
    """A copy of ``record`` pinned to a Hub revision and file hash (after publishing)."""
    return replace(record, hub_revision=revision, sha256=sha256)


#: pretrained_cfg keys that say where weights come from; a folder must not point elsewhere.
_SOURCE_KEYS = {"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source"}


#: The keys timm's ``PretrainedCfg`` accepts (an unknown one raises TypeError in timm).
@cache
def pretrained_cfg_keys() -> frozenset[str]:
    """The keys timm's ``PretrainedCfg`` accepts."""
    from timm.models import PretrainedCfg

    return frozenset(f.name for f in fields(PretrainedCfg))


def timm_pretrained_cfg(
    arch: Architecture,
    record: WeightRecord | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """The timm ``pretrained_cfg`` of a weight (:meth:`WeightRecord.pretrained_cfg`,
    weights folders and :func:`radiologynet.create_model` all build it here): the record's
    preprocessing, head, licence, provenance and labels, else ``base`` (a folder's own
    ``pretrained_cfg``), else the architecture's letterbox input without normalisation;
    with ``first_conv``/``classifier`` (so ``in_chans`` and ``num_classes`` work), only
    keys timm accepts, and no key that points at another file."""
    if record is not None:
        cfg: dict[str, Any] = {
            **record.preprocessing.timm_cfg(),
            "num_classes": record.num_classes,
            "license": record.license,
            "paper_ids": f"doi:{PAPER_DOI}" if record.paper else "",
            "origin_url": record.source_url or "",
            "tag": record.tag,
            "label_names": record.label_names or None,
            "description": record.description,
            "architecture": arch.timm_name,
        }
    elif base is not None:
        cfg = dict(base)
    else:
        cfg = {
            **Preprocessing(input_size=arch.input_size).timm_cfg(),
            "architecture": arch.timm_name,
            "paper_ids": f"doi:{PAPER_DOI}",
        }
    cfg.setdefault("first_conv", arch.first_conv)
    cfg.setdefault("classifier", arch.classifier)
    if num_classes is not None:
        cfg["num_classes"] = num_classes
    return {
        k: v
        for k, v in cfg.items()
        if k in pretrained_cfg_keys() and k not in _SOURCE_KEYS and v not in (None, "")
    }
