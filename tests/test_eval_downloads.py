"""Evaluation-data downloads on loopback: resumable verified fetch, safe extraction, VOC / Context / COCO-Object
conversion into the readers' layouts (the registry's real URLs and pins are replaced by loopback ones)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from groupvit.evaluation import load_eval_dataset
from groupvit.evaluation.datasets import DatasetLayoutError
from groupvit.evaluation.download.archive import UnsafeArchiveError, extract_archive, safe_extract
from groupvit.evaluation.download.config import EvalDataConfig
from groupvit.evaluation.download.fetch import ChecksumMismatchError, DownloadError, fetch, part_file, sidecar
from groupvit.evaluation.download.sets import (
    CONTEXT_459_IDS, FILES, EvalDataError, context_full_to_59, is_present, prepare_eval_dataset, reader_root,
    ready_marker, ready_marker_inputs,
)
from groupvit.rehearsal.eval_archives import coco_archives, context_archives, tar_bytes, voc2012_tar


# ------------------------------------------------------------------------------------------------ loopback server
class Server:
    """Serves {path: bytes} with Range support; records (path, Range header); can cut a response short once."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: dict[str, int] = {}  # path -> bytes to send before dropping the connection (first time)
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng.endswith("-") and not server.ignore_range:
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------ tiny archives
# voc2012_tar, context_archives, coco_archives (groupvit.rehearsal.eval_archives): the rehearsal server's builders.


def _serve(server: Server, file_id: str, data: bytes) -> tuple[dict, dict]:
    path = f"/mirror/{FILES[file_id].filename}"
    server.files[path] = data
    return {file_id: server.url(path)}, {file_id: sha(data)}


def _prepare(server, name, root, archives: dict[str, bytes], **kw):
    urls, pins = {}, {}
    for file_id, data in archives.items():
        u, p = _serve(server, file_id, data)
        urls.update(u)
        pins.update(p)
    return prepare_eval_dataset(name, root, urls=urls, sha256=pins, retries=1, backoff=0.0, timeout=10, **kw)


# ------------------------------------------------------------------------------------------------ datasets end to end
def test_voc_download_extract_read(server, tmp_path):
    tar, masks = voc2012_tar()
    root = tmp_path / "data"
    target = _prepare(server, "voc", root, {"voc2012_trainval": tar})
    assert target == reader_root(root, "voc") == root / "voc" / "VOCdevkit" / "VOC2012"
    ds = load_eval_dataset("voc", target)
    assert [s.id for s in ds.samples] == ["2007_000033", "2007_000042"] and ds.num_classes == 21
    for k, item in enumerate(ds):
        np.testing.assert_array_equal(item.mask, masks[item.id])
        assert set(np.unique(item.mask)) == {0, k + 1, 255}
    assert not (target / "Annotations").exists(), "only the folders the reader needs are extracted"
    assert ready_marker(root, "voc").is_file() and is_present(root, "voc")
    assert not [p for p in root.iterdir() if p.name.startswith(".")], "no temporary build folder left"
    n = len(server.requests)
    assert _prepare(server, "voc", root, {"voc2012_trainval": tar}) == target
    assert len(server.requests) == n, "a ready dataset is not downloaded again"


def test_evaluations_wait_for_the_ready_marker_unless_the_data_were_put_in_place_by_hand(server, tmp_path):
    import shutil

    tar, _ = voc2012_tar()
    root = tmp_path / "data"
    marker = str(ready_marker(root, "voc"))
    assert ready_marker_inputs(root, "voc") == [marker]  # to download
    _prepare(server, "voc", root, {"voc2012_trainval": tar})
    assert ready_marker_inputs(root, "voc") == [marker]  # downloaded: the same input, so nothing reruns
    by_hand = tmp_path / "by_hand"
    shutil.copytree(root / "voc", by_hand / "voc")
    (by_hand / "voc" / ".groupvit-ready.json").unlink()
    assert is_present(by_hand, "voc") and ready_marker_inputs(by_hand, "voc") == []


def test_context_mat_labels_to_59_classes(server, tmp_path):
    voc2010, labels, expected = context_archives()
    root = tmp_path / "data"
    target = _prepare(server, "context", root, {"voc2010_trainval": voc2010, "context_labels": labels})
    assert target == root / "context" / "VOCdevkit" / "VOC2010"
    ds = load_eval_dataset("context", target)
    assert ds.num_classes == 60 and [s.id for s in ds.samples] == list(expected)
    for item in ds:
        np.testing.assert_array_equal(item.mask, expected[item.id])
    assert ds.class_names[1] == "aeroplane" and ds.class_names[37] == "person" and ds.class_names[59] == "wood"
    assert not (root / "context" / ".context_labels").exists()


def test_context_table_is_mmseg_order():
    assert len(CONTEXT_459_IDS) == 60 and list(CONTEXT_459_IDS) == sorted(set(CONTEXT_459_IDS))
    full = np.array([[0, 2, 458, 1, 3], [459, 284, 9, 18, 115]])
    np.testing.assert_array_equal(context_full_to_59(full), [[0, 1, 59, 0, 0], [0, 37, 2, 3, 24]])
    with pytest.raises(ValueError, match="0-459"):
        context_full_to_59(np.array([460]))


def test_coco_object_conversion(server, tmp_path):
    images, maps, expected = coco_archives()
    root = tmp_path / "data"
    target = _prepare(server, "coco_object", root, {"coco_val2017": images, "cocostuff_stuffthingmaps": maps})
    assert target == root / "coco"
    ds = load_eval_dataset("coco_object", target)
    assert ds.mask_transform is None, "converted _instanceTrainIds.png masks are used"
    assert ds.num_classes == 81 and [s.id for s in ds.samples] == list(expected)
    for item in ds:
        np.testing.assert_array_equal(item.mask, expected[item.id])
    assert ds.class_names[12] == "stop sign" and ds.class_names[80] == "toothbrush"
    assert not (target / "annotations" / "train2017").exists()


# ------------------------------------------------------------------------------------------------ verification
def test_checksum_mismatch_is_an_error_and_marks_nothing(server, tmp_path):
    tar, _ = voc2012_tar()
    urls, _ = _serve(server, "voc2012_trainval", tar)
    root = tmp_path / "data"
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError) as err:
        prepare_eval_dataset("voc", root, urls=urls, sha256={"voc2012_trainval": wrong}, retries=0, backoff=0)
    msg = str(err.value)
    assert urls["voc2012_trainval"] in msg and wrong in msg and sha(tar) in msg and "Rerun" in msg
    dest = root / "downloads" / "VOCtrainval_11-May-2012.tar"
    assert not dest.exists() and not part_file(dest).exists() and not sidecar(dest).exists()
    assert not ready_marker(root, "voc").exists() and not (root / "voc").exists()


def test_users_file_is_never_replaced(server, tmp_path):
    server.files["/f.bin"] = b"the real bytes"
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"the user's own file")
    with pytest.raises(ChecksumMismatchError, match="left untouched"):
        fetch(server.url("/f.bin"), dest, sha256=sha(b"the real bytes"), retries=0)
    assert dest.read_bytes() == b"the user's own file" and not server.requests


def test_md5_pins_are_verified(server, tmp_path):
    server.files["/m.bin"] = b"abc" * 100
    with pytest.raises(ChecksumMismatchError, match="md5"):
        fetch(server.url("/m.bin"), tmp_path / "m.bin", md5="0" * 32, retries=0)
    good = hashlib.md5(b"abc" * 100).hexdigest()
    assert fetch(server.url("/m.bin"), tmp_path / "m.bin", md5=good, retries=0).read_bytes() == b"abc" * 100


def test_interrupted_download_resumes_with_range(server, tmp_path):
    data = bytes(range(256)) * 400  # 102,400 bytes
    server.files["/big.bin"] = data
    server.cut_once["/big.bin"] = 40_000
    dest = tmp_path / "big.bin"
    fetch(server.url("/big.bin"), dest, sha256=sha(data), retries=3, backoff=0.0)
    assert dest.read_bytes() == data and not part_file(dest).exists()
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=40000-")]
    assert sidecar(dest).read_text().split()[0] == sha(data)
    fetch(server.url("/big.bin"), dest, sha256=sha(data))
    assert len(server.requests) == 2, "a .sha256-verified file is not downloaded again"


def test_complete_part_file_and_servers_without_range(server, tmp_path):
    data = b"0123456789" * 50
    server.files["/p.bin"] = data
    dest = tmp_path / "p.bin"
    part_file(dest).write_bytes(data)  # a run that died after the transfer, before verification
    fetch(server.url("/p.bin"), dest, sha256=sha(data), retries=0)
    assert dest.read_bytes() == data and server.requests == [("/p.bin", f"bytes={len(data)}-")]
    server.ignore_range, server.requests[:] = True, []
    other = tmp_path / "q.bin"
    part_file(other).write_bytes(data[:100])
    fetch(server.url("/p.bin"), other, sha256=sha(data), retries=0)  # a 200 answer rewrites the part from 0
    assert other.read_bytes() == data and server.requests == [("/p.bin", "bytes=100-")]


def test_unpinned_files_are_refused_before_any_download(server, tmp_path):
    voc2010, labels, _ = context_archives()
    urls = {**_serve(server, "voc2010_trainval", voc2010)[0], **_serve(server, "context_labels", labels)[0]}
    with pytest.raises(EvalDataError, match="allow-unpinned"):
        prepare_eval_dataset("context", tmp_path / "data", urls=urls, retries=0)
    assert not server.requests
    with pytest.raises(DownloadError, match="no checksum is pinned"):
        fetch(urls["context_labels"], tmp_path / "x.tar.gz")


def test_existing_incomplete_folder_is_left_alone(tmp_path):
    folder = tmp_path / "data" / "voc"
    (folder / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(EvalDataError, match="left untouched"):
        prepare_eval_dataset("voc", tmp_path / "data")
    assert (folder / "VOCdevkit" / "VOC2012" / "JPEGImages").is_dir()


# ------------------------------------------------------------------------------------------------ unsafe archives
def _tar_with(tmp_path: Path, build) -> Path:
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        build(tar)
    return path


def _file(tar, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink_escape", "hardlink_escape", "fifo"])
def test_unsafe_tar_is_refused(tmp_path, case):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "outside"
    abs_target = tmp_path / "abs_evil"

    def build(tar):
        _file(tar, "ok/first.txt")
        if case == "dotdot":
            _file(tar, "ok/../../evil", b"pwned")
        elif case == "absolute":
            _file(tar, str(abs_target), b"pwned")
        elif case == "symlink_escape":
            _link(tar, "ok/link", "../../outside")
            _file(tar, "ok/link/evil", b"pwned")
        elif case == "hardlink_escape":
            info = tarfile.TarInfo("ok/hard")
            info.type = tarfile.LNKTYPE
            info.linkname = "../outside/passwd"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo("ok/pipe")
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)

    archive = _tar_with(work, build)
    dest = work / "dest"
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive, dest)
    assert str(archive) in str(err.value) and "refusing member" in str(err.value)
    assert not dest.exists(), "nothing extracted, not even the safe members"
    assert not outside.exists() and not abs_target.exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in work.iterdir()) == ["bad.tar"], "no temporary folder left"


def test_zip_with_dotdot_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("val2017/ok.png", b"x")
        zf.writestr("val2017/../../evil", b"pwned")
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip.*val2017/\.\./\.\./evil"):
        safe_extract(archive, work / "dest")
    assert not (tmp_path / "evil").exists() and not (work / "dest" / "val2017" / "ok.png").exists()


def test_safe_archives_extract_with_selection(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(tar_bytes({"a/keep.txt": b"1", "b/skip.txt": b"2", "a/sub/deep.txt": b"3"}, gz=True))
    dest = extract_archive(archive, tmp_path / "out", select=lambda rel: rel.startswith("a/"))
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.txt")) == ["a/keep.txt", "a/sub/deep.txt"]
    with pytest.raises(FileExistsError):
        extract_archive(archive, dest)


# ------------------------------------------------------------------------------------------------ config and CLI
def test_eval_data_schema_matches_dataclass():
    from groupvit.config.experiment import load_schema

    props = set(load_schema()["$defs"]["preset"]["properties"]["eval_data"]["properties"])
    assert props == {f.name for f in dataclasses.fields(EvalDataConfig)}
    ids = load_schema()["$defs"]["preset"]["properties"]["eval_data"]["properties"]["sha256"]["propertyNames"]["enum"]
    assert sorted(ids) == sorted(FILES)


def test_registry_pins():
    voc = FILES["voc2012_trainval"]
    assert voc.md5 == "6cd6e144f989b92b3379bac3b3de84fd" and len(voc.sha256) == 64 and voc.size == 1999639040
    assert FILES["coco_val2017"].sha256 and FILES["voc2010_trainval"].md5
    assert all(f.url.startswith(("http://", "https://")) for f in FILES.values())


def test_cli_download_eval_and_missing_dataset_error(server, tmp_path, monkeypatch, capsys):
    from groupvit.cli import main

    tar, _ = voc2012_tar()
    urls, pins = _serve(server, "voc2012_trainval", tar)
    root = tmp_path / "real"
    sets = ["--set", f"eval_data.root={root}"]
    evaluate = ["evaluate", "--preset", "paper", *sets, "--dataset", "voc", "--out", str(tmp_path / "m.json")]
    assert main([*evaluate, "--checkpoint", str(tmp_path / "absent.pth")]) == 2  # a clean error, before any work
    assert "absent.pth: no such file" in capsys.readouterr().err
    checkpoint = tmp_path / "group_vit_gcc_yfcc_30e-879422e0.pth"
    checkpoint.write_bytes(b"")
    with pytest.raises(DatasetLayoutError) as err:  # the dataset is read first: its error names the download
        main([*evaluate, "--checkpoint", str(checkpoint)])
    assert f"groupvit download-eval --dataset voc --root {root}" in str(err.value)
    rc = main(["download-eval", "--preset", "paper", "--dataset", "voc", *sets,
               "--set", f"eval_data.urls.voc2012_trainval={urls['voc2012_trainval']}",
               "--set", f"eval_data.sha256.voc2012_trainval={pins['voc2012_trainval']}"])
    assert rc == 0 and "voc: ready under" in capsys.readouterr().out
    assert len(load_eval_dataset("voc", reader_root(root, "voc"))) == 2
    rc = main(["download-eval", "--preset", "paper", "--dataset", "context", "--root", str(tmp_path / "other"),
               "--set", f"eval_data.urls.context_labels={server.url('/nothing')}"])
    assert rc == 1 and "allow-unpinned" in capsys.readouterr().err
