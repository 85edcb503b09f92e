"""URL/caption lists -> shards in img2dataset's layout, all against a loopback HTTP server (no internet).

The server serves generated JPEG/PNG images, 404s, a corrupt file, a slow one (beyond the timeout), one that
fails once with 503 (retried) and one whose X-Robots-Tag opts out. Checked: the layout, the training reader
reading the shards, failure counts in the stats and the summary, the caption filter, resume after an
interruption (finished shards byte-identical, only the missing one refetched), the all-failing error, the
list readers, and the img2dataset backend (its command line always; a real run when it is installed).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tarfile
import threading
import time
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from groupvit.data.pairs import builtin
from groupvit.data.pairs.config import PairsConfig, PairsDatasetConfig
from groupvit.data.pairs.download import DownloadError, download_dataset
from groupvit.data.pairs.filter import FilterReport, filter_pairs
from groupvit.data.pairs.img2dataset_backend import build_command
from groupvit.data.pairs.layout import datasets_to_download, datasets_to_wait_for, sample_key, shard_name
from groupvit.data.pairs.lists import read_pairs, resolve_list_files

REPO = Path(__file__).resolve().parents[1]
SLOW_S = 1.2
TIMEOUT_S = 0.5


def _image_bytes(index: int, fmt: str) -> bytes:
    image = Image.new("RGB", (48, 40), (index * 40 % 256, 200 - index * 30 % 200, 90))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    requests: Counter = Counter()
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _send(self, body: bytes, content_type: str = "image/jpeg", headers: dict | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.lock:
            self.requests[self.path] += 1
            seen = self.requests[self.path]
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/img/"):
            index, ext = name.split(".")
            self._send(_image_bytes(int(index), "PNG" if ext == "png" else "JPEG"))
        elif name == "corrupt.jpg":
            self._send(b"\xff\xd8\xff\xe0 this is not really a jpeg")
        elif name == "slow.jpg":
            time.sleep(SLOW_S)
            try:
                self._send(_image_bytes(9, "JPEG"))
            except OSError:
                pass  # the client gave up (timeout)
        elif name == "flaky.jpg" and seen == 1:
            self.send_error(503)
        elif name == "flaky.jpg":
            self._send(_image_bytes(7, "JPEG"))
        elif name == "optout.jpg":
            self._send(_image_bytes(8, "JPEG"), headers={"X-Robots-Tag": "noai, noimageai"})
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _rows(base: str) -> list[tuple[str, str]]:
    """(caption, url) in CC3M's column order. After the filter: 10 pairs, 3 shards of 4/4/2."""
    return [
        ("a red square on a table", f"{base}/img/0.jpg"),
        ("a green circle", f"{base}/img/1.png"),
        ("missing picture of a dog", f"{base}/missing/1.jpg"),
        ("a broken image file here", f"{base}/corrupt.jpg"),
        ("a slow image of a cat", f"{base}/slow.jpg"),
        ("cat", f"{base}/img/2.jpg"),  # under 2 words: dropped
        ("a red square on a table again", f"{base}/img/0.jpg"),  # duplicate URL: dropped
        ("a blue triangle drawn", f"{base}/img/3.jpg"),
        ("a flaky server image", f"{base}/flaky.jpg"),
        ("an opted out picture", f"{base}/optout.jpg"),
        ("a yellow star in the sky", f"{base}/img/4.jpg"),
        ("a plain grey picture", f"{base}/img/5.jpg"),
    ]


def _write_list(path: Path, base: str) -> Path:
    lines = [f"{caption}\t{url}" for caption, url in _rows(base)] + ["a line without a tab"]  # malformed: dropped
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(**changes) -> PairsConfig:
    base = PairsConfig(image_size=32, samples_per_shard=4, workers=8, retries=1, timeout=TIMEOUT_S,
                       min_caption_words=2)
    return replace(base, **changes)


def _dataset(list_path: Path) -> PairsDatasetConfig:
    return PairsDatasetConfig(name="cc3m", format="cc3m", url_list=str(list_path))


def _download(tmp: Path, server: str, name: str = "cc3m", **changes):
    list_path = _write_list(tmp / f"{name}.tsv", server)
    out = tmp / "shards" / name
    return download_dataset(_dataset(list_path), _config(**changes), out, backoff=0.01), out, list_path


@pytest.fixture(scope="module")
def downloaded(server, tmp_path_factory):
    """One full download, shared by the read-only checks."""
    result, out, _ = _download(tmp_path_factory.mktemp("pairs"), server)
    return result, out


def test_layout_is_img2datasets(downloaded):
    result, out = downloaded
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    for shard in ("00000", "00001", "00002"):
        assert f"{shard}.tar" in names and f"{shard}_stats.json" in names
        assert f"{shard}.csv" in names or f"{shard}.parquet" in names
    assert {"summary.csv", "summary.md", "_pairs"} <= set(names)
    assert {p.name for p in (out / "_pairs").iterdir()} == {"done.json", "pairs.tsv", "plan.json"}
    with tarfile.open(out / "00000.tar") as tar:
        members = tar.getnames()
    # shard 0 holds img/0.jpg and img/1.png (keys 000000, 000001); the 404 and the corrupt file leave gaps
    assert members == ["000000.jpg", "000000.txt", "000000.json", "000001.jpg", "000001.txt", "000001.json"]
    assert all("." not in m.rsplit(".", 1)[0] for m in members)
    with tarfile.open(out / "00000.tar") as tar:
        meta = json.loads(tar.extractfile("000001.json").read())
        image = Image.open(io.BytesIO(tar.extractfile("000001.jpg").read()))
    assert meta["caption"] == "a green circle" and meta["status"] == "success"
    assert (meta["original_width"], meta["original_height"]) == (48, 40)
    assert image.format == "JPEG" and min(image.size) == 32 and image.size == (meta["width"], meta["height"])


def test_training_reader_reads_the_shards(downloaded):
    from helpers.char_tokenizer import CharTokenizer
    from groupvit.data.config import AugmentConfig, DataConfig
    from groupvit.data.shards import build_train_loader

    _, out = downloaded
    data = DataConfig(source="webdataset", shards=[str(out)], shuffle_buffer=0, num_workers=0, multi_label_nouns=0,
                      augment=AugmentConfig(crop_scale=[1.0, 1.0], hflip=False, randaugment=False, random_erasing=0.0))
    loader = build_train_loader(data, data.shards, image_size=32, batch_size=2,
                                tokenize=CharTokenizer(context_length=32), seed=0, epoch_samples=6)
    batches = [batch for _, batch in zip(range(3), loader)]
    captions = sorted(c for b in batches for c in b["caption"])
    assert captions == sorted(["a red square on a table", "a green circle", "a blue triangle drawn",
                               "a flaky server image", "a yellow star in the sky", "a plain grey picture"])
    assert batches[0]["image"].shape == (2, 3, 32, 32)
    assert loader.counters()["corrupt_image"] == 0 and loader.counters()["shard_error"] == 0


def test_failures_are_counted_in_stats_and_summary(downloaded):
    result, out = downloaded
    stats = [json.loads((out / f"{s}_stats.json").read_text()) for s in ("00000", "00001", "00002")]
    assert [s["count"] for s in stats] == [4, 4, 2]
    assert [s["successes"] for s in stats] == [2, 2, 2]
    assert stats[0]["failed_to_download"] == 1 and stats[0]["failed_to_resize"] == 1
    assert stats[0]["status_dict"]["HTTP Error 404"] == 1
    assert stats[1]["status_dict"] == {"success": 2, "timeout": 1, "opted out (X-Robots-Tag)": 1}
    assert result.totals == {**result.totals, "count": 10, "successes": 6, "failed_to_download": 3,
                             "failed_to_resize": 1, "shards": 3}
    with open(out / "summary.csv") as handle:
        rows = {row["shard"]: row for row in csv.DictReader(handle)}
    assert rows["total"]["successes"] == "6" and rows["total"]["failed_to_download"] == "3"
    assert rows["00001"]["success_rate"] == "0.5000"
    md = (out / "summary.md").read_text()
    assert "6 of 10 URLs downloaded (60.0%)" in md and "| HTTP Error 404 | 1 |" in md and "| timeout | 1 |" in md
    table = list(csv.DictReader(open(out / "00000.csv"))) if (out / "00000.csv").exists() else None
    if table is not None:
        assert [r["status"] for r in table] == ["success", "success", "failed_to_download", "failed_to_resize"]
    done = json.loads((out / "_pairs" / "done.json").read_text())
    assert done["successes"] == 6 and done["filter"]["dropped"]["short_caption"] == 1


def test_filter_drops_short_captions_duplicates_and_malformed_lines(downloaded):
    result, _ = downloaded
    assert result.filter == {"read": 13, "kept": 10, "dropped": {
        "malformed": 1, "bad_url": 0, "empty_caption": 0, "short_caption": 1, "duplicate_url": 1}}
    report = FilterReport()
    pairs = [("http://x/1", "one"), ("http://x/2", "two words"), ("ftp://x/3", "three words here"),
             ("http://x/4", "  \t "), ("http://x/2", "two words again"), ("https://x/5", "five\twords\nsplit  up")]
    kept = list(filter_pairs(pairs, report, min_caption_words=2))
    assert kept == [("http://x/2", "two words"), ("https://x/5", "five words split up")]
    assert report.dropped == Counter(short_caption=1, bad_url=1, empty_caption=1, duplicate_url=1)


def _fingerprint(out: Path, shard: str) -> tuple[bytes, int, bytes]:
    tar, stats = out / f"{shard}.tar", out / f"{shard}_stats.json"
    return tar.read_bytes(), tar.stat().st_mtime_ns, stats.read_bytes()


def test_rerun_after_interruption_redoes_only_the_missing_shard(server, tmp_path, monkeypatch):
    real = builtin.download_shard

    def killed_after_first(shard_id, *args, **kwargs):
        if shard_id >= 1:
            raise KeyboardInterrupt("simulated kill")
        return real(shard_id, *args, **kwargs)

    monkeypatch.setattr(builtin, "download_shard", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        _download(tmp_path, server)
    out = tmp_path / "shards" / "cc3m"
    assert (out / "00000_stats.json").exists() and not (out / "00001.tar").exists()
    assert not (out / "_pairs" / "done.json").exists()
    first = _fingerprint(out, "00000")
    monkeypatch.setattr(builtin, "download_shard", real)

    before = Counter(_Handler.requests)
    result, out, _ = _download(tmp_path, server)
    fetched = Counter(_Handler.requests) - before
    assert _fingerprint(out, "00000") == first, "a finished shard was rewritten"
    assert result.shards_done_now == ["00001", "00002"]
    assert "/img/1.png" not in fetched and "/img/4.jpg" in fetched

    # A shard whose stats file is gone (killed while writing it) is redone; the others stay byte-identical.
    kept = {s: _fingerprint(out, s) for s in ("00000", "00001")}
    (out / "00002_stats.json").unlink()
    (out / ".00002.tar.leftover.tmp").write_bytes(b"half a tar")
    (out / "00002.tar").write_bytes(b"truncated")
    before = Counter(_Handler.requests)
    result, out, _ = _download(tmp_path, server)
    fetched = Counter(_Handler.requests) - before
    assert result.shards_done_now == ["00002"]
    assert set(fetched) == {"/img/4.jpg", "/img/5.jpg"}
    assert {s: _fingerprint(out, s) for s in ("00000", "00001")} == kept
    assert not (out / ".00002.tar.leftover.tmp").exists()
    with tarfile.open(out / "00002.tar") as tar:
        assert len(tar.getnames()) == 6
    assert result.totals["successes"] == 6


def test_changed_settings_are_refused_in_a_used_folder(downloaded, tmp_path):
    _, out = downloaded
    copy = tmp_path / "cc3m"
    shutil.copytree(out, copy)
    plan = json.loads((copy / "_pairs" / "plan.json").read_text())
    list_path = Path(plan["lists"][0]["path"])
    with pytest.raises(DownloadError, match="image_size"):
        download_dataset(_dataset(list_path), _config(image_size=64), copy)


def test_all_failing_list_raises_naming_the_list(server, tmp_path, capsys):
    from groupvit.cli import main

    list_path = tmp_path / "dead.tsv"
    list_path.write_text("".join(f"a dead link number {i}\t{server}/missing/{i}.jpg\n" for i in range(5)))
    out = tmp_path / "dead"
    with pytest.raises(DownloadError, match=str(list_path)) as err:
        download_dataset(_dataset(list_path), _config(), out)
    assert "HTTP Error 404: 5" in str(err.value)
    assert not list(out.glob("*_stats.json")), "an all-failing run must not leave finished shards behind"
    assert not (out / "_pairs" / "done.json").exists()

    rc = main(["download-pairs", "--list", str(list_path), "--format", "cc3m", "--out", str(tmp_path / "cli"),
               "--image-size", "32",
               "--samples-per-shard", "4", "--retries", "0", "--timeout", str(TIMEOUT_S)])
    assert rc == 1 and str(list_path) in capsys.readouterr().err


def test_list_readers(tmp_path):
    cc12m = tmp_path / "cc12m.tsv"
    cc12m.write_text('http://a/1.jpg\ta "quoted" caption\nhttp://a/2.jpg\tsecond\n')
    assert list(read_pairs([str(cc12m)], "cc12m")) == [("http://a/1.jpg", 'a "quoted" caption'),
                                                      ("http://a/2.jpg", "second")]
    yfcc = tmp_path / "yfcc.csv"
    yfcc.write_text("photoid,downloadurl,title,description\n"
                    "1,http://y/1.jpg,Sunset+at+the+beach,<b>Golden</b>+light\n"
                    "2,http://y/2.jpg,IMG_0001,\n")
    pairs = list(read_pairs([str(yfcc)], "yfcc"))
    assert pairs == [("http://y/1.jpg", "Sunset at the beach. Golden light"), ("http://y/2.jpg", "IMG_0001")]
    report = FilterReport()
    assert len(list(filter_pairs(pairs, report, min_caption_words=2))) == 1  # the yfcc floor: 2 words
    folder = tmp_path / "redcaps"
    folder.mkdir()
    (folder / "itookapicture.json").write_text(json.dumps(
        {"info": {}, "annotations": [{"image_id": "x", "url": "https://i.redd.it/x.jpg", "caption": "my dog"}]}))
    files = resolve_list_files(str(folder), "redcaps")
    assert list(read_pairs(files, "redcaps")) == [("https://i.redd.it/x.jpg", "my dog")]
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        resolve_list_files(str(tmp_path / "nope.tsv"), "cc3m")


def test_keys_and_workflow_selection(tmp_path):
    from groupvit.config import load_config

    assert shard_name(3, 10) == "00003" and shard_name(3, 123456) == "000003"
    assert sample_key(0, 7, 10000, 332) == "000000007" and sample_key(12, 7, 10000, 332) == "000120007"
    default = load_config(preset="default")
    assert default.data.source != "webdataset" and datasets_to_download(default.pairs, "default", []) == []
    pairs = replace(load_config(preset="paper").pairs, output_dir=str(tmp_path))
    patterns = [f"{tmp_path}/cc3m/{{00000..00001}}.tar", f"{tmp_path}/cc12m"]
    assert datasets_to_download(pairs, "paper", patterns) == ["cc3m", "cc12m"]
    (tmp_path / "cc3m").mkdir()
    for name in ("00000.tar", "00001.tar"):
        (tmp_path / "cc3m" / name).write_bytes(b"")
    assert datasets_to_download(pairs, "paper", patterns) == ["cc12m"]
    # a folder with shards from an interrupted download (bookkeeping, no done file) is still to be downloaded
    (tmp_path / "cc12m" / "_pairs").mkdir(parents=True)
    (tmp_path / "cc12m" / "00000.tar").write_bytes(b"")
    assert datasets_to_download(pairs, "paper", patterns) == ["cc12m"]
    (tmp_path / "cc12m" / "_pairs" / "done.json").write_text("{}")
    assert datasets_to_download(pairs, "paper", patterns) == []
    # training keeps waiting for a finished download (the same inputs before and after it), not for hand-put shards
    assert datasets_to_wait_for(pairs, "paper", patterns) == ["cc12m"]
    assert datasets_to_wait_for(pairs, "paper", [f"{tmp_path}/cc3m/{{00000..00001}}.tar"]) == []


def test_img2dataset_command_line(tmp_path):
    command = build_command("/opt/i2d/bin/img2dataset", tmp_path / "pairs.tsv", tmp_path / "out", image_size=512,
                            samples_per_shard=10000, processes=16, threads=64, retries=2)
    args = dict(zip(command[1::2], command[2::2]))
    assert command[0] == "/opt/i2d/bin/img2dataset"
    assert args == {**args, "--input_format": "tsv", "--url_col": "url", "--caption_col": "caption",
                    "--output_format": "webdataset", "--image_size": "512", "--resize_mode": "keep_ratio",
                    "--processes_count": "16", "--thread_count": "64", "--retries": "2", "--enable_wandb": "False",
                    "--incremental_mode": "incremental", "--number_sample_per_shard": "10000"}


def _img2dataset_executable() -> str | None:
    candidates = [os.environ.get("GROUPVIT_IMG2DATASET", ""), str(REPO / ".venv-img2dataset" / "bin" / "img2dataset"),
                  shutil.which("img2dataset") or ""]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.mark.skipif(_img2dataset_executable() is None, reason="img2dataset is not installed (separate environment)")
def test_img2dataset_backend_output_is_read_by_the_training_reader(server, tmp_path):
    from groupvit.data.samples import decode_sample, iter_shards

    cfg = _config(backend="img2dataset", img2dataset_executable=_img2dataset_executable(), retries=0, workers=4)
    list_path = _write_list(tmp_path / "cc3m.tsv", server)
    out = tmp_path / "i2d"
    result = download_dataset(_dataset(list_path), cfg, out)
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    counts: dict[str, int] = {}
    samples = [decode_sample(raw) for raw in iter_shards(sorted(str(p) for p in out.glob("*.tar")), counts)]
    assert {s.caption for s in samples} >= {"a red square on a table", "a yellow star in the sky"}
    assert all(min(s.image.size) == 32 for s in samples)
    assert result.totals["count"] == 10 and result.totals["successes"] == len(samples)


def test_several_processes_give_the_same_shards(server, tmp_path):
    list_path = tmp_path / "fast.tsv"
    list_path.write_text("".join(f"picture number {i} of a shape\t{server}/img/{i}.jpg\n" for i in range(6)))
    outs = []
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        download_dataset(_dataset(list_path), _config(samples_per_shard=2, processes=processes), out)
        outs.append(out)
    for shard in ("00000", "00001", "00002"):
        assert (outs[0] / f"{shard}.tar").read_bytes() == (outs[1] / f"{shard}.tar").read_bytes()


def test_schema_and_pairs_dataclasses_agree():
    """tests/test_config.py checks the $defs sections; the pairs block sits inline in the preset definition."""
    import dataclasses

    import jsonschema

    from groupvit.dataclass_io import to_dict
    from groupvit.config.experiment import load_schema
    from groupvit.data.pairs.config import BACKENDS, FORMATS
    from groupvit.data.pairs.lists import FORMAT_SPECS

    schema = load_schema()
    block = schema["$defs"]["preset"]["properties"]["pairs"]
    item = block["properties"]["datasets"]["items"]
    assert set(block["properties"]) == {f.name for f in dataclasses.fields(PairsConfig)}
    assert set(item["properties"]) == {f.name for f in dataclasses.fields(PairsDatasetConfig)}
    assert item["properties"]["format"]["enum"] == list(FORMATS) == list(FORMAT_SPECS)
    assert block["properties"]["backend"]["enum"] == list(BACKENDS)
    example = to_dict(PairsConfig(datasets=[PairsDatasetConfig(name="cc3m", url_list="x.tsv")]))
    jsonschema.validate(example, {**block, "$defs": schema["$defs"]})
