"""Command line: ``python -m natverk spiral [options]`` and ``python -m natverk config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _nodes(text: str) -> list[int]:
    try:
        nodes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 2,250,100,50,4, got {text!r}") from None
    if len(nodes) < 2 or nodes[0] != 2 or min(nodes) < 1:
        raise argparse.ArgumentTypeError("nodes must start with 2 (the spiral is 2-D) and be positive")
    return nodes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m natverk", description="natverk command line")
    sub = parser.add_subparsers(dest="command", required=True)

    from natverk.experiments.toy import SPIRAL_FULL  # the main job's defaults: Table 3's calibrated setup

    sp = sub.add_parser("spiral", help="train the thesis' spiral network and save its decision boundary")
    sp.add_argument("--epochs", type=_positive_int, default=SPIRAL_FULL.epochs)
    sp.add_argument("--learning-rate", type=float, default=SPIRAL_FULL.learning_rate)
    sp.add_argument("--lambda", dest="lambda_", type=float, default=0.0, help="L2 strength")
    sp.add_argument("--nodes", type=_nodes, default=[2, 250, 100, 50, 4], help="layer widths, e.g. 2,250,100,50,4")
    sp.add_argument("--batch-size", type=_positive_int, default=SPIRAL_FULL.minibatch_size)
    sp.add_argument("--points-per-class", type=_positive_int, default=SPIRAL_FULL.points,
                    help=f"training points per class (default {SPIRAL_FULL.points}: Table 3's calibrated setup)")
    sp.add_argument("--label-noise", type=float, default=0.2)
    sp.add_argument("--activation", type=str.lower, choices=["relu", "sigmoid", "tanh"], default="relu")  # any case
    sp.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--threads", type=_positive_int, default=None)
    sp.add_argument("--out", default="results", help="output folder for the figure, created if missing "
                    "(default: results, like reproduce)")
    sp.add_argument("--output", "-o", default=None,
                    help="PNG to write instead of <--out>/spiral_decision_boundary.png")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("config", help="print the build and run-time configuration")

    from natverk.experiments import names

    rp = sub.add_parser(
        "reproduce",
        help="re-run a table or figure of the thesis and write it beside the thesis' numbers",
        description="Writes <name>.md, <name>.csv and figures into --out.",
    )
    rp.add_argument("name", choices=names(), help="table2 (figure4), table3 (figure5), table4, table5-6, figure6-7")
    rp.add_argument("--quick", action="store_true", help="small data and few epochs: a smoke test in minutes")
    rp.add_argument("--epochs", type=_positive_int, default=None, help="epochs for the image networks")
    rp.add_argument("--seed", type=int, action="append", dest="seeds", default=None,
                    help="a seed to run (repeat for several); default: 5 seeds for table2/3, 1 otherwise; "
                         "the full Table 4 is --seed 0 --seed 1 --seed 2")
    rp.add_argument("--out", "-o", default="results", help="output folder (default: results)")
    rp.add_argument("--jobs", type=_positive_int, default=1, help="processes for search trials")
    rp.add_argument("--threads", type=_positive_int, default=None, help="natverk threads")
    rp.add_argument("--data-root", default=None, help="folder holding mnist/, fashion-mnist/, cifar-10/, isic/ "
                    "(default: $NATVERK_DATA)")
    rp.add_argument("--verbose", action="store_true", help="progress bars while training")
    rp.add_argument("--fresh", action="store_true",
                    help="table4: retrain the chosen cells instead of reusing those already in --out")
    rp.add_argument("--dataset", action="append", dest="datasets", default=None,
                    choices=["mnist", "fashion-mnist", "cifar-10"],
                    help="table4: a dataset to run (repeat for several; default: all)")
    rp.add_argument("--network", action="append", dest="networks", default=None, choices=["FC", "CNN"],
                    help="table4: a network to run (repeat for several; default: both)")
    rp.add_argument("--reuse-any", action="store_true",
                    help="table4: also reuse finished cells of other or unknown code (default: only cells "
                         "whose code, the last commit touching cpp/, python/, pyproject.toml, is this one's); "
                         "the report names them")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "reproduce" and (args.datasets or args.networks or args.reuse_any):
        from natverk.experiments import ALIASES

        if ALIASES.get(args.name, args.name) != "table4":
            parser.error("--dataset, --network and --reuse-any choose Table 4's cells: use them with table4")
    import natverk

    if args.command == "config":
        natverk.show_config()
        return 0

    if args.threads:
        natverk.set_num_threads(args.threads)
    if args.command == "reproduce":
        from natverk.experiments import reproduce

        result = reproduce(args.name, out=args.out, quick=args.quick, epochs=args.epochs, seeds=args.seeds,
                           jobs=args.jobs, verbose=int(args.verbose), data_root=args.data_root,
                           resume=not args.fresh, datasets=args.datasets, networks=args.networks,
                           reuse_any=args.reuse_any)
        print(f"{result['name']}: {result['wall_s']:.1f} s; wrote {result['paths']['markdown']}")
        return 0
    from natverk.main import spiral

    result = spiral(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        lambda_=args.lambda_,
        nodes=args.nodes,
        minibatch_size=args.batch_size,
        n_per_class=args.points_per_class,
        label_noise=args.label_noise,
        activation=args.activation,
        seed=args.seed,
        output=args.output if args.output is not None else Path(args.out) / "spiral_decision_boundary.png",
        dtype=args.dtype,
        verbose=0 if args.quiet else "auto",
    )
    print(
        f"spiral {'-'.join(map(str, args.nodes))}, {args.epochs} epochs, lambda {args.lambda_:g}: "
        f"train accuracy {result['train_accuracy']:.4f}, test accuracy {result['test_accuracy']:.4f} "
        f"({result['seconds']:.1f} s, {natverk.get_num_threads()} threads, {natverk._core.simd_level()})"
    )
    print(f"decision boundary written to {result['figure']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
