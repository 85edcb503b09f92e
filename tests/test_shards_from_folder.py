"""`groupvit shards-from-folder`: one's own captioned images -> shards in the downloads' layout, no URLs.

Checked: side-car and table (CSV, TSV, JSONL) captions give the same shards; bad input (missing caption, non-UTF-8
caption, duplicate key, undecodable image, missing file, malformed row) is skipped and counted in the filter report,
the stats and the summary; the layout is the download's (tars of KEY.jpg/.txt/.json, tables, stats, summary,
_pairs/ bookkeeping) and the training data source reads it; runs are deterministic and resume; an empty result and
a changed source fail with the reason.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from groupvit.cli import main
from groupvit.data.pairs.fetch import FetchError
from groupvit.data.pairs.folder import (
    FolderDataError, FolderSettings, list_folder_pairs, read_local, shards_from_folder,
)
from groupvit.data.pairs.layout import DONE_FILE, PLAN_FILE

SETTINGS = FolderSettings(image_size=16, samples_per_shard=3, workers=2)
GOOD = {f"img{i}": f"a {colour} square number {i}"
        for i, colour in enumerate(["red", "green", "blue", "white", "gray"])}


def _image(path: Path, value: int, size=(24, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, (3 * value) % 256)).save(path)


@pytest.fixture
def messy(tmp_path) -> Path:
    """5 good pairs (one in a subfolder) and one of each kind of bad input."""
    src = tmp_path / "src"
    for i, (name, caption) in enumerate(GOOD.items()):
        path = src / ("sub" if i == 4 else "") / f"{name}.png"
        _image(path, 40 * i)
        path.with_suffix(".txt").write_text(caption + "\n", encoding="utf-8")
    _image(src / "img0.jpg", 7)  # same key as img0.png: webdataset would merge the two
    _image(src / "nocaption.png", 9)
    _image(src / "latin.png", 11)
    (src / "latin.txt").write_bytes("un caf\xe9 noir".encode("latin-1"))
    _image(src / "blank.png", 13)
    (src / "blank.txt").write_text("  \n\t ")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (src / "broken.txt").write_text("a broken picture")
    (src / "notes.md").write_text("not an image, not listed")
    return src


def _members(tar_path: Path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _captions(out: Path) -> list[str]:
    found = []
    for tar_path in sorted(out.glob("*.tar")):
        members = _members(tar_path)
        found += [members[n].decode() for n in sorted(members) if n.endswith(".txt")]
    return found


def test_sidecar_folder_layout_counts_and_summary(messy, tmp_path):
    out = tmp_path / "shards"
    result = shards_from_folder(messy, out, settings=SETTINGS)
    dropped = result.filter["dropped"]
    assert result.filter["read"] == 10 and result.filter["kept"] == 6
    assert {k: v for k, v in dropped.items() if v} == {
        "missing_caption": 1, "non_utf8_caption": 1, "empty_caption": 1, "duplicate_key": 1}
    totals = result.totals
    assert (totals["count"], totals["successes"], totals["failed_to_resize"]) == (6, 5, 1)
    assert totals["status_dict"] == {"success": 5, "image decoding error": 1}
    # the download's layout: 2 shards of 3, tables, stats, summary, bookkeeping
    for name in ("00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json", "summary.csv", "summary.md",
                 PLAN_FILE, DONE_FILE, "_pairs/pairs.tsv"):
        assert (out / name).is_file(), name
    assert any((out / f"00000.{ext}").is_file() for ext in ("parquet", "csv"))
    members = _members(out / "00000.tar")
    keys = sorted({n.split(".")[0] for n in members})
    assert all(f"{k}.{ext}" in members for k in keys for ext in ("jpg", "txt", "json"))
    meta = json.loads(members[f"{keys[0]}.json"])  # by path: broken.jpg (undecodable), img0.jpg (img0.png: dup)
    assert meta["url"] == "img0.jpg" and meta["caption"] == members[f"{keys[0]}.txt"].decode() == GOOD["img0"]
    with Image.open(io.BytesIO(members[f"{keys[0]}.jpg"])) as image:
        assert min(image.size) == 16  # resized to the short side
    assert sorted(_captions(out)) == sorted(GOOD.values())
    summary = (out / "summary.md").read_text()
    assert "5 of 6" in summary and "image decoding error | 1" in summary
    done = json.loads((out / DONE_FILE).read_text())
    assert done["successes"] == 5 and done["filter"]["dropped"]["duplicate_key"] == 1
    assert json.loads((out / "00000_stats.json").read_text())["backend"] == "folder"


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_caption_tables_give_the_sidecar_shards(messy, tmp_path, kind):
    rows = [(f"{'sub/' if i == 4 else ''}{name}.png", caption) for i, (name, caption) in enumerate(GOOD.items())]
    rows += [("missing.png", "a picture that is not there"), ("img0.png", "listed twice")]
    table = tmp_path / f"captions.{kind}"
    if kind == "jsonl":
        lines = [json.dumps({"image": p, "text": c}) for p, c in rows] + ["[1, 2]", "{broken json"]
        table.write_text("\n".join(lines) + "\n")
    else:
        sep = "," if kind == "csv" else "\t"
        lines = [f"path{sep}caption"] + [f"{p}{sep}{c}" for p, c in rows] + ["only-a-path.png"]
        table.write_bytes(("\n".join(lines) + "\n").encode() + f"latin.png{sep}caf".encode() + b"\xe9\n")
    out = tmp_path / f"from_{kind}"
    result = shards_from_folder(messy, out, captions=table, settings=SETTINGS)
    dropped = {k: v for k, v in result.filter["dropped"].items() if v}
    expected = {"missing_image": 1, "duplicate_key": 1, "malformed": 2}
    if kind != "jsonl":
        expected = {"missing_image": 1, "duplicate_key": 1, "malformed": 1, "non_utf8_caption": 1}
    assert dropped == expected
    assert result.totals["successes"] == 5
    sidecar = shards_from_folder(messy, tmp_path / "sidecar", settings=FolderSettings(
        image_size=16, samples_per_shard=5))
    table_only = shards_from_folder(messy, tmp_path / f"{kind}5", captions=table, settings=FolderSettings(
        image_size=16, samples_per_shard=5))
    assert sidecar.totals["successes"] == table_only.totals["successes"] == 5
    assert sorted(_captions(tmp_path / "sidecar")) == sorted(_captions(tmp_path / f"{kind}5"))


def test_deterministic_and_resumable(messy, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    shards_from_folder(messy, first, settings=SETTINGS)
    shards_from_folder(messy, second, settings=FolderSettings(image_size=16, samples_per_shard=3, workers=1))
    for tar_path in sorted(first.glob("*.tar")):
        assert tar_path.read_bytes() == (second / tar_path.name).read_bytes()
    kept = (first / "00000.tar").stat().st_mtime_ns
    (first / "00001_stats.json").unlink()  # an interrupted run: shard 1 never finished
    (first / "00001.tar").unlink()
    result = shards_from_folder(messy, first, settings=SETTINGS)
    assert result.shards_done_now == ["00001"]
    assert (first / "00000.tar").stat().st_mtime_ns == kept
    assert (first / "00001.tar").read_bytes() == (second / "00001.tar").read_bytes()
    # a changed source or setting is not mixed into the finished shards
    (messy / "nocaption.txt").write_text("now it has a caption")
    with pytest.raises(FolderDataError, match="listing_sha256.*added, removed or edited"):
        shards_from_folder(messy, first, settings=SETTINGS)
    with pytest.raises(FolderDataError, match="image_size"):
        shards_from_folder(messy, second, settings=FolderSettings(image_size=32, samples_per_shard=3))


def test_empty_results_fail_with_the_reason(tmp_path):
    src = tmp_path / "src"
    _image(src / "a.png", 1)
    _image(src / "b.png", 2)
    with pytest.raises(FolderDataError, match="no usable image/caption pair.*missing_caption=2"):
        shards_from_folder(src, tmp_path / "out", settings=SETTINGS)
    assert not (tmp_path / "out").exists()
    for name in ("a", "b"):
        (src / f"{name}.png").write_bytes(b"garbage")
        (src / f"{name}.txt").write_text("a caption")
    with pytest.raises(FolderDataError, match="could be read and decoded.*image decoding error: 2"):
        shards_from_folder(src, tmp_path / "out", settings=SETTINGS)
    assert not list((tmp_path / "out").glob("*_stats.json")) and not (tmp_path / "out" / DONE_FILE).exists()
    with pytest.raises(FolderDataError, match="inside the source folder"):
        shards_from_folder(src, src / "shards", settings=SETTINGS)


def test_short_captions_and_unreadable_files(tmp_path):
    src = tmp_path / "src"
    _image(src / "a.png", 1)
    (src / "a.txt").write_text("cat")
    _image(src / "b.png", 2)
    (src / "b.txt").write_text("a black cat")
    pairs, report = list_folder_pairs(src, min_caption_words=2)
    assert pairs == [("b.png", "a black cat")] and report.dropped["short_caption"] == 1
    with pytest.raises(FetchError) as err:
        read_local(str(src), "gone.png", None)
    assert err.value.status == "unreadable file"


def test_cli_writes_shards_the_training_source_reads(messy, tmp_path, capsys):
    from groupvit.config import load_config
    from groupvit.train.data_source import train_data_for

    out = tmp_path / "shards"
    argv = ["shards-from-folder", str(messy), str(out), "--preset", "smoke", "--image-size", "16",
            "--samples-per-shard", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "5 of 10 images in 2 shards" in printed and "duplicate_key 1" in printed and "undecodable 1" in printed
    cfg = load_config(preset="smoke", overrides=["data.source=webdataset", f"data.shards=[{out}]"])
    data = train_data_for(cfg)
    assert data.num_samples == 5 and len(data.shards) == 2
    batch = next(data.make_batches(start_step=0, batch_size=2, rank=0, world_size=1, seed=0,
                                   tokenize=lambda texts: torch.zeros(len(texts), 4, dtype=torch.long)))
    assert batch["image"].shape[0] == 2 and set(batch["caption"]) <= set(GOOD.values()) | {
        c.replace("left", "right") for c in GOOD.values()}
    assert main(["shards-from-folder", str(tmp_path / "nowhere"), str(tmp_path / "o2")]) == 1
    assert "no such folder" in capsys.readouterr().err
