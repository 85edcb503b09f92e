"""python -m groupvit.rehearsal serve|pins (see groupvit.rehearsal.server)."""
from __future__ import annotations

import argparse
import json
import signal
import sys

from groupvit.rehearsal import pairs_lists
from groupvit.rehearsal.server import HOST, NUM_PAIRS, PORT, RehearsalFiles, RehearsalServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m groupvit.rehearsal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="write the pair lists, then serve images and archives until stopped")
    serve.add_argument("--port", type=int, default=PORT, help=f"port on {HOST} (the preset's URLs use {PORT})")
    serve.add_argument("--lists", default="data/rehearsal/lists", help="where the preset expects the pair lists")
    serve.add_argument("--num-pairs", type=int, default=NUM_PAIRS, help="pairs per dataset")
    sub.add_parser("pins", help="print the evaluation archives' sha256 (eval_data.sha256 of the preset)")
    args = parser.parse_args(argv)

    if args.command == "pins":
        print(json.dumps(RehearsalFiles().pins(), indent=2))
        return 0
    files = RehearsalFiles()
    files.files  # build the archives before accepting connections
    try:
        server = RehearsalServer(args.port, HOST, files)
    except OSError as exc:
        print(f"groupvit rehearsal: cannot listen on {HOST}:{args.port} ({exc}); stop what uses it (the rehearsal "
              f"preset's URLs name port {PORT})", file=sys.stderr)
        return 1
    written = pairs_lists.write_lists(args.lists, args.num_pairs, server.base_url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        for name, path in written.items():
            print(f"{name}: {path}")
        print(f"serving on {server.base_url} (Ctrl-C stops)", flush=True)
        try:
            server.thread.join()
        except (KeyboardInterrupt, SystemExit):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
