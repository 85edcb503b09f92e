"""The `groupvit` command: one entry point for people and for the Snakemake rules.

Every subcommand reads the same config file (config/config.yaml), resolves a preset and validates it, so a bad key
stops here with the key path in the message before any work starts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from groupvit.config import DEFAULT_CONFIG, ConfigError, ExperimentConfig, load_config

log = logging.getLogger("groupvit")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="config file (default: %(default)s)")
    parser.add_argument("--preset", default=None, help="preset name (default: the file's `preset`)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
        help="override one value of the resolved preset, e.g. --set train.steps=100 (repeatable)",
    )


def _config(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.preset, args.overrides)


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.action == "show":
        data = cfg.for_variant(args.variant).to_dict() if args.variant else cfg.to_dict()
        print(json.dumps(data, indent=2))
    else:
        print(f"{args.config}: preset {cfg.preset!r} is valid ({len(cfg.variants)} variants)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from groupvit.data.world.generate import generate_world

    cfg = _config(args)
    out = Path(args.out) if args.out else cfg.data_dir / "synthetic"
    card = generate_world(cfg.world, out, workers=args.workers, progress=not args.no_progress)
    print(f"wrote {out} (content hash {card.get('content_hash', '?')})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groupvit", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="show or validate the resolved config of a preset")
    p.add_argument("action", choices=["show", "validate"])
    p.add_argument("--variant", default=None, help="show the config a variant trains with")
    _add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("synth", help="generate the synthetic image-caption-mask world")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="output folder (default: data/<preset>/synthetic)")
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"groupvit: config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
