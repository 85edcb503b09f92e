"""The real evaluation datasets: where to download them, their pinned checksums, and the conversions into the
layouts the readers in groupvit.evaluation.datasets expect.

| dataset     | downloads                                             | result (under eval_data.root)          |
| ----------- | ----------------------------------------------------- | -------------------------------------- |
| voc         | VOCtrainval_11-May-2012.tar (1.9 GB)                  | voc/VOCdevkit/VOC2012 (val: 1,449)     |
| context     | VOCtrainval_03-May-2010.tar (1.3 GB) + Pascal-Context | context/VOCdevkit/VOC2010 (val: 5,105) |
|             | trainval.tar.gz (full 459-label .mat maps, ~31 MB)    |                                        |
| coco_object | val2017.zip (0.8 GB) + stuffthingmaps_trainval2017.zip | coco (val2017: 5,000 images)          |

Pascal Context conversion: from the Context release's full-label maps (trainval/<id>.mat, `LabelMap`, values =
line numbers of its labels.txt, 0 = unlabeled), NOT from the Detail API's trainval_merged.json. Each map goes through
mmseg's fixed table (the 59 label ids below, sorted, -> 1..59; every other label and 0 -> 0 = background), which is
what mmseg's tools/convert_datasets/pascal_context.py applies to the Detail masks of the same images. The split is
VOC2010's ImageSets/Main/val.txt (5,105 images), which is the Detail API's `val` phase that mmseg uses.

COCO-Object: COCO-Stuff164k's val2017 label maps (value = COCO category id - 1, 255 = unlabeled) through
groupvit.evaluation.datasets.coco_object (things 0-90 -> 1-80 contiguous, stuff and 255 -> 0).

Every build happens in a temporary folder beside the target that is renamed into place once the reader loads it;
the ready marker (<folder>/.groupvit-ready.json) is written last.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

READY_NAME = ".groupvit-ready.json"
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class RemoteFile:
    id: str
    url: str
    filename: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = ""


# Pinned checksums and where they come from (see docs/real-data.md). md5 is verified where it is the only digest
# published; files without any published digest need --allow-unpinned (or a pin via eval_data.sha256).
FILES: dict[str, RemoteFile] = {f.id: f for f in (
    RemoteFile(
        "voc2012_trainval", "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        "VOCtrainval_11-May-2012.tar", size=1999639040,
        sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb",
        md5="6cd6e144f989b92b3379bac3b3de84fd",
        checksum_source="sha256+size: tensorflow/datasets url_checksums/voc.txt (same tar on the pjreddie.com "
                        "mirror); md5: torchvision.datasets.VOCSegmentation",
    ),
    RemoteFile(
        "voc2010_trainval", "http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
        "VOCtrainval_03-May-2010.tar", md5="da459979d0c395079b5c75ee67908abb",
        checksum_source="md5: torchvision.datasets.VOCSegmentation (no published sha256 found)",
    ),
    RemoteFile(
        "context_labels", "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz", "trainval.tar.gz",
        checksum_source="none published: needs --allow-unpinned or eval_data.sha256.context_labels",
    ),
    RemoteFile(
        "coco_val2017", "http://images.cocodataset.org/zips/val2017.zip", "val2017.zip", size=815585330,
        sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05",
        md5="442b8da7639aecaf257c1dceb8ba8c80",
        checksum_source="sha256+size: tensorflow/datasets url_checksums/coco2017.txt; md5: MLPerf/neural-compressor "
                        "COCO download scripts",
    ),
    RemoteFile(
        "cocostuff_stuffthingmaps",
        "http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/stuffthingmaps_trainval2017.zip",
        "stuffthingmaps_trainval2017.zip",
        checksum_source="none published: needs --allow-unpinned or eval_data.sha256.cocostuff_stuffthingmaps",
    ),
)}


@dataclass(frozen=True)
class EvalSet:
    name: str  # as in eval.datasets
    folder: str  # under eval_data.root
    reader_path: str  # the reader's root, relative to the folder
    files: tuple[str, ...]
    disk: str


EVAL_SETS: dict[str, EvalSet] = {s.name: s for s in (
    EvalSet("voc", "voc", "VOCdevkit/VOC2012", ("voc2012_trainval",),
            "1.9 GB download; ~1.2 GB extracted (JPEGImages, SegmentationClass, split files)"),
    EvalSet("context", "context", "VOCdevkit/VOC2010", ("voc2010_trainval", "context_labels"),
            "1.3 GB + 31 MB download; ~1.1 GB extracted and converted"),
    EvalSet("coco_object", "coco", "", ("coco_val2017", "cocostuff_stuffthingmaps"),
            "0.8 GB + 0.6 GB download; ~0.8 GB extracted (val2017 only) and converted"),
)}
FOLDER_TO_DATASET = {s.folder: s.name for s in EVAL_SETS.values()}

# mmseg's Pascal Context table: full-label ids (labels.txt line numbers) of background and the 59 classes, sorted,
# so that position i is class i of groupvit.evaluation.datasets.names.CONTEXT_CLASSES (alphabetical).
CONTEXT_459_IDS = (
    0, 2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115, 144,
    158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355, 360,
    366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)
CONTEXT_NUM_FULL_LABELS = 459


class EvalDataError(RuntimeError):
    """A dataset that cannot be prepared; the message says why and what to do."""


def _spec(name: str) -> EvalSet:
    if name not in EVAL_SETS:
        raise ValueError(f"unknown evaluation dataset {name!r}; downloadable: {sorted(EVAL_SETS)}")
    return EVAL_SETS[name]


def dataset_folder(root: str | os.PathLike, name: str) -> Path:
    return Path(root) / _spec(name).folder


def reader_root(root: str | os.PathLike, name: str) -> Path:
    """The folder to give the reader (load_eval_dataset(name, reader_root(root, name)))."""
    spec = _spec(name)
    return Path(root) / spec.folder / spec.reader_path if spec.reader_path else Path(root) / spec.folder


def ready_marker(root: str | os.PathLike, name: str) -> Path:
    return dataset_folder(root, name) / READY_NAME


def _layout_present(base: Path, name: str) -> bool:
    """Cheap check (no per-file scan) that base looks like the reader's layout."""
    if name == "voc":
        return (base / "ImageSets/Segmentation/val.txt").is_file() and (base / "SegmentationClass").is_dir()
    if name == "context":
        return (base / "ImageSets/SegmentationContext/val.txt").is_file() and \
            (base / "SegmentationClassContext").is_dir()
    return (base / "images/val2017").is_dir() and (base / "annotations/val2017").is_dir()


def is_present(root: str | os.PathLike, name: str) -> bool:
    """The dataset is ready (marker) or already in the reader's layout (e.g. put there by hand)."""
    return ready_marker(root, name).is_file() or _layout_present(reader_root(root, name), name)


def ready_marker_inputs(root: str | os.PathLike, name: str) -> list[str]:
    """What an evaluation of `name` waits for: [its ready marker] (which the workflow's download_eval_dataset rule
    produces), or [] when the data were put in place without one. A downloaded dataset's marker stays an input, so the
    input set is the same before and after the download (Snakemake reruns a job whose input set changed)."""
    marker = ready_marker(root, name)
    return [] if is_present(root, name) and not marker.is_file() else [str(marker)]


def resolve_file(file_id: str, urls: Mapping[str, str] | None = None,
                 sha256: Mapping[str, str] | None = None) -> RemoteFile:
    """The registry entry with eval_data.urls / eval_data.sha256 applied. A replaced URL keeps the pinned digests
    (a mirror must serve the same bytes); a sha256 given in the config replaces the registry's pins."""
    unknown = sorted((set(urls or {}) | set(sha256 or {})) - set(FILES))
    if unknown:
        raise ValueError(f"eval_data: unknown file id(s) {unknown}; valid: {sorted(FILES)}")
    entry = FILES[file_id]
    url = (urls or {}).get(file_id, entry.url)
    if sha256 and file_id in sha256:
        return RemoteFile(entry.id, url, entry.filename, None, str(sha256[file_id]).lower(), None, "eval_data.sha256")
    return RemoteFile(entry.id, url, entry.filename, entry.size, entry.sha256, entry.md5, entry.checksum_source)


# ---------------------------------------------------------------------------------------------------------------
# Builders: each fills `tmp` (an empty folder that becomes <root>/<folder>) from the downloaded archives.


def _build_voc(tmp: Path, archives: dict[str, Path]) -> None:
    from groupvit.evaluation.download.archive import safe_extract

    keep = ("VOCdevkit/VOC2012/JPEGImages/", "VOCdevkit/VOC2012/SegmentationClass/",
            "VOCdevkit/VOC2012/ImageSets/Segmentation/")
    safe_extract(archives["voc2012_trainval"], tmp, select=lambda rel: (rel + "/").startswith(keep))


def _find_dir_with(base: Path, pattern: str) -> Path | None:
    for path in sorted(base.rglob(pattern)):
        return path.parent
    return None


def context_lut() -> "np.ndarray":  # noqa: F821
    import numpy as np

    lut = np.zeros(CONTEXT_NUM_FULL_LABELS + 1, dtype=np.uint8)
    for train_id, full_id in enumerate(CONTEXT_459_IDS):
        lut[full_id] = train_id
    return lut


def context_full_to_59(label_map: "np.ndarray") -> "np.ndarray":  # noqa: F821
    """Pascal Context full-label map (0-459) -> 60-class map (0 = background and every non-59 label)."""
    import numpy as np

    label_map = np.asarray(label_map)
    if label_map.size and (label_map.min() < 0 or label_map.max() > CONTEXT_NUM_FULL_LABELS):
        raise ValueError(f"Pascal Context labels must be in 0-{CONTEXT_NUM_FULL_LABELS}, "
                         f"got {label_map.min()}-{label_map.max()}")
    return context_lut()[label_map.astype(np.int64)]


def _check_context_labels(labels_txt: Path) -> None:
    """Warn if the release's labels.txt names the 59 ids differently from the class list (a sanity check only)."""
    from groupvit.evaluation.datasets.names import CONTEXT_CLASSES

    names = {}
    for line in labels_txt.read_text(errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            if key.strip().isdigit():
                names[int(key.strip())] = value.strip().replace(" ", "").lower()
    differ = [(i, names.get(i), c) for i, c in zip(CONTEXT_459_IDS[1:], CONTEXT_CLASSES[1:])
              if names.get(i) is not None and names[i] != c]
    if differ:
        log.warning("%s: %d of the 59 ids carry other names than expected, e.g. %s", labels_txt, len(differ), differ[:3])


def _build_context(tmp: Path, archives: dict[str, Path]) -> None:
    import numpy as np
    from PIL import Image
    from scipy.io import loadmat

    from groupvit.evaluation.download.archive import safe_extract

    keep = ("VOCdevkit/VOC2010/JPEGImages/", "VOCdevkit/VOC2010/ImageSets/Main/")
    safe_extract(archives["voc2010_trainval"], tmp, select=lambda rel: (rel + "/").startswith(keep))
    base = tmp / "VOCdevkit" / "VOC2010"
    split = base / "ImageSets" / "Main" / "val.txt"
    if not split.is_file():
        raise EvalDataError(f"{archives['voc2010_trainval']}: VOCdevkit/VOC2010/ImageSets/Main/val.txt is missing")
    labels_dir = tmp / ".context_labels"
    safe_extract(archives["context_labels"], labels_dir, select=lambda rel: rel.endswith((".mat", ".txt")))
    mat_dir = _find_dir_with(labels_dir, "*.mat")
    if mat_dir is None:
        raise EvalDataError(f"{archives['context_labels']}: no <id>.mat label maps inside")
    labels_txt = next(iter(sorted(labels_dir.rglob("labels.txt"))), None)
    if labels_txt is not None:
        _check_context_labels(labels_txt)
    ids = [line.strip() for line in split.read_text().splitlines() if line.strip()]
    missing = [i for i in ids if not (mat_dir / f"{i}.mat").is_file()]
    if missing:
        raise EvalDataError(f"{archives['context_labels']}: {len(missing)} of the {len(ids)} val label maps are "
                            f"missing, e.g. {missing[0]}.mat")
    out = base / "SegmentationClassContext"
    out.mkdir(parents=True, exist_ok=True)
    for i in ids:
        label_map = loadmat(mat_dir / f"{i}.mat")["LabelMap"]
        Image.fromarray(context_full_to_59(label_map).astype(np.uint8), mode="L").save(out / f"{i}.png")
    sets = base / "ImageSets" / "SegmentationContext"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("\n".join(ids) + "\n")
    shutil.rmtree(labels_dir)


def _build_coco(tmp: Path, archives: dict[str, Path]) -> None:
    from groupvit.evaluation.download.archive import safe_extract
    from groupvit.evaluation.datasets.coco_object import convert_coco_stuff_to_object

    safe_extract(archives["coco_val2017"], tmp / "images", select=lambda rel: rel.startswith("val2017/"))
    safe_extract(archives["cocostuff_stuffthingmaps"], tmp / "annotations",
                 select=lambda rel: rel.startswith("val2017/"))
    ann = tmp / "annotations" / "val2017"
    if not ann.is_dir():
        raise EvalDataError(f"{archives['cocostuff_stuffthingmaps']}: no val2017/ label maps inside")
    convert_coco_stuff_to_object(ann)


BUILDERS = {"voc": _build_voc, "context": _build_context, "coco_object": _build_coco}


def prepare_eval_dataset(
    name: str,
    root: str | os.PathLike = "data",
    *,
    downloads: str | os.PathLike | None = None,
    urls: Mapping[str, str] | None = None,
    sha256: Mapping[str, str] | None = None,
    allow_unpinned: bool = False,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
) -> Path:
    """Download (resumable, verified), extract safely, convert and check one dataset; return its reader root.

    Idempotent: a dataset with its ready marker is left alone; one already in the reader's layout without a marker
    (placed by hand) is checked with the reader and marked, never overwritten.
    """
    from groupvit.atomic import atomic_write_json
    from groupvit.evaluation.download.fetch import fetch, read_sidecar
    from groupvit.evaluation.datasets import load_eval_dataset

    spec = _spec(name)
    root = Path(root)
    folder, marker, target = dataset_folder(root, name), ready_marker(root, name), reader_root(root, name)
    if marker.is_file():
        log.info("%s: ready (%s)", name, marker)
        return target
    if folder.exists() and any(p.name != READY_NAME for p in folder.iterdir()):
        try:
            dataset = load_eval_dataset(name, target)
        except Exception as err:  # noqa: BLE001 - reported with the fix
            raise EvalDataError(
                f"{folder} exists but is not a complete {name} dataset ({err}).\nIt was left untouched: move it "
                f"away (or finish it by hand) and rerun `groupvit download-eval --dataset {name} --root {root}`."
            ) from None
        atomic_write_json({"dataset": name, "images": len(dataset), "source": "found in place"}, marker)
        return target

    downloads = Path(downloads) if downloads else root / "downloads"
    entries = [resolve_file(file_id, urls, sha256) for file_id in spec.files]
    unpinned = [e for e in entries if e.sha256 is None and e.md5 is None]
    if unpinned and not allow_unpinned:  # say so before downloading gigabytes of the other files
        raise EvalDataError(
            f"{name}: no checksum is published for {', '.join(f'{e.id} ({e.url})' for e in unpinned)}.\n"
            f"Rerun with --allow-unpinned (or set eval_data.allow_unpinned: true) to accept it unverified: the sha256 "
            f"it gets is recorded beside it and logged, so you can pin it with --set eval_data.sha256.<file id>=<hex>."
        )
    archives, record = {}, []
    for entry in entries:
        file_id = entry.id
        log.info("%s: %s -> %s", name, entry.url, downloads / entry.filename)
        archives[file_id] = fetch(entry.url, downloads / entry.filename, sha256=entry.sha256, md5=entry.md5,
                                  size=entry.size, allow_unpinned=allow_unpinned, retries=retries, backoff=backoff,
                                  timeout=timeout)
        record.append({"id": file_id, "url": entry.url, "sha256": read_sidecar(archives[file_id]),
                       "pinned": entry.sha256 is not None or entry.md5 is not None})

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.build-", dir=root))
    try:
        BUILDERS[name](tmp, archives)
        tmp_target = tmp / spec.reader_path if spec.reader_path else tmp
        try:
            dataset = load_eval_dataset(name, tmp_target)
        except Exception as err:  # noqa: BLE001
            raise EvalDataError(f"{name}: the converted data does not load ({err})") from None
        if folder.exists():
            folder.rmdir()  # empty (e.g. created by Snakemake for the marker's folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_json({"dataset": name, "images": len(dataset), "reader_root": str(target), "files": record,
                       "converter_version": CONVERTER_VERSION}, marker)
    log.info("%s: %d images ready under %s", name, len(dataset), target)
    return target


__all__ = [
    "CONTEXT_459_IDS", "EVAL_SETS", "FILES", "FOLDER_TO_DATASET", "EvalDataError", "EvalSet", "RemoteFile",
    "context_full_to_59", "dataset_folder", "is_present", "prepare_eval_dataset", "reader_root", "ready_marker",
    "ready_marker_inputs", "resolve_file",
]
