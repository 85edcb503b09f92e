"""The loopback server behind the `rehearsal` preset: pair images drawn on the fly and the small evaluation-set
archives, on 127.0.0.1 only.

    python -m groupvit.rehearsal serve          # writes data/rehearsal/lists/, serves on 127.0.0.1:18765
    python -m groupvit.rehearsal pins           # the archives' sha256, as pinned in the preset

Routes: /pairs/img/<dataset>/<i>.jpg|png (200), /pairs/dead/... (404), /eval/<release file name> (Range-aware).
"""
from __future__ import annotations

import hashlib
import re
import threading
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from groupvit.rehearsal import eval_archives, pairs_lists

HOST = "127.0.0.1"
PORT = 18765
NUM_PAIRS = 200  # per dataset
EVAL_IMAGE_SIZE = (120, 160)  # (h, w) of the evaluation images: 448 x 597 after the protocol's resize
_IMG = re.compile(r"^/pairs/img/(\w+)/(\d+)\.(jpg|png)$")


class RehearsalFiles:
    """The evaluation archives by release file name (built once, byte-identical on every machine with the same
    Pillow/scipy), and the masks their conversion must give."""

    @cached_property
    def _built(self) -> tuple[dict[str, bytes], dict[str, dict]]:
        h, w = EVAL_IMAGE_SIZE
        voc, voc_masks = eval_archives.voc2012_tar(("2007_000033", "2007_000042", "2007_000061"), h, w)
        voc2010, context, context_masks = eval_archives.context_archives(
            ("2008_000002", "2008_000003", "2008_000007"), h, w)
        coco, stuff, coco_masks = eval_archives.coco_archives(("000000000139", "000000000285", "000000000632"), h, w)
        files = {"VOCtrainval_11-May-2012.tar": voc, "VOCtrainval_03-May-2010.tar": voc2010,
                 "trainval.tar.gz": context, "val2017.zip": coco, "stuffthingmaps_trainval2017.zip": stuff}
        return files, {"voc": voc_masks, "context": context_masks, "coco_object": coco_masks}

    @property
    def files(self) -> dict[str, bytes]:
        return self._built[0]

    @property
    def masks(self) -> dict[str, dict]:
        return self._built[1]

    def pins(self) -> dict[str, str]:
        """{eval_data file id: sha256} of the served archives."""
        from groupvit.evaluation.download.sets import FILES

        return {fid: hashlib.sha256(self.files[f.filename]).hexdigest() for fid, f in FILES.items()}


def _handler(files: RehearsalFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _reply(self, body: bytes, content_type: str) -> None:
            start = 0
            rng = self.headers.get("Range") or ""
            if rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            image = _IMG.match(self.path)
            if image and image.group(1) in pairs_lists.LISTS:
                fmt = "PNG" if image.group(3) == "png" else "JPEG"
                self._reply(pairs_lists.image_bytes(image.group(1), int(image.group(2)), fmt), f"image/{fmt.lower()}")
            elif self.path.startswith("/eval/") and self.path[6:] in files.files:
                self._reply(files.files[self.path[6:]], "application/octet-stream")
            else:
                self.send_error(404)

    return Handler


class RehearsalServer:
    """The server in a background thread (`with RehearsalServer(port) as server: ...`); port 0 picks a free one."""

    def __init__(self, port: int = PORT, host: str = HOST, files: RehearsalFiles | None = None) -> None:
        self.files = files or RehearsalFiles()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self.files))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> RehearsalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
