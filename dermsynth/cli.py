"""`dermsynth` console commands."""
from __future__ import annotations

import argparse
import sys

from dermsynth.config import configure_environment


def _demo_data(args: argparse.Namespace) -> None:
    from dermsynth.demo.layouts import write_demo

    out = write_demo(args.out, seed=args.seed, defects=not args.no_defects)
    print(f"demo raw data written to {out}")


def main(argv: list[str] | None = None) -> None:
    configure_environment()
    parser = argparse.ArgumentParser(prog="dermsynth", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo-data", help="write the procedural demo set in HAM10000/ISIC layouts")
    p.add_argument("--out", default="data/raw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-defects", action="store_true", help="leave out the deliberately bad inputs")
    p.set_defaults(fn=_demo_data)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main(sys.argv[1:])
