"""``radiologynet probe FEATURES... --out DIR``: do these weights help on my data?"""

from __future__ import annotations

import argparse

#: The defaults shown in --help; the API's own defaults (``radiologynet.analysis.probe``)
#: are the same, and a test keeps them so without importing the probe here.
DEFAULT_SHOTS = "1,2,5,10,25"
DEFAULT_DRAWS = 10
DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07
DEFAULT_RESAMPLES = 1000


def register(parser: argparse.ArgumentParser) -> None:
    """Fill the ``probe`` parser: description, options and ``func``."""
    parser.description = (
        "Frozen-feature probes of several initialisations of the same images (one "
        "`radiologynet embed` parquet file each; the first is the one asked about): "
        "DINOv2's logistic regression (C swept on val, refit on train+val) and weighted "
        "k-NN, a few-shot curve, ridge regression for a numeric label. Writes probe.csv "
        "(95 % bootstrap intervals over the test images), comparison.csv (paired "
        "bootstrap; Mann-Whitney with Bonferroni over the few-shot draws), fewshot.csv, "
        "split.csv, probe.png, probe.json and summary.txt, and prints the summary."
    )
    parser.add_argument(
        "features",
        nargs="+",
        metavar="FEATURES",
        help="feature files (parquet from `radiologynet embed`), optionally NAME=FILE",
    )
    parser.add_argument("--out", required=True, help="folder for the results")
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated probes (default: logreg,knn,fewshot for classes, ridge for "
        "a numeric label)",
    )
    parser.add_argument(
        "--task",
        default="auto",
        choices=("auto", "classification", "regression"),
        help="what the label is (default auto: float labels are a regression target)",
    )
    parser.add_argument(
        "--metric",
        default=None,
        help="the metric of the verdict: accuracy (default), macro_f1, auroc; mae for regression",
    )
    parser.add_argument("--seed", type=int, default=0, help="split, few-shot draws, bootstrap")
    parser.add_argument(
        "--c-grid",
        default="default",
        choices=("default", "dinov2"),
        help="logistic regression's C values: default = 10**linspace(-6, 5, 23) (half-decade "
        "steps), dinov2 = DINOv2's 45 quarter-decade steps (twice the time)",
    )
    parser.add_argument("--k", type=int, default=DEFAULT_K, help=f"k-NN neighbours ({DEFAULT_K})")
    parser.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"k-NN softmax temperature ({DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--shots",
        default=DEFAULT_SHOTS,
        help=f"few-shot training images per class, comma-separated ({DEFAULT_SHOTS})",
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=DEFAULT_DRAWS,
        help=f"seeded draws per few-shot point ({DEFAULT_DRAWS})",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples of the test images ({DEFAULT_RESAMPLES})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads of the fits (default 1: fastest on shared cores; 0: the "
        "libraries' default)",
    )
    parser.set_defaults(func=run)


def _named(argument: str) -> tuple[str | None, str]:
    """``NAME=FILE`` -> (NAME, FILE); a plain FILE -> (None, FILE)."""
    name, sep, path = argument.partition("=")
    if sep and name and "/" not in name and "\\" not in name:
        return name, path
    return None, argument


def _integers(option: str, text: str) -> list[int]:
    from radiologynet.errors import InvalidArgumentError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise InvalidArgumentError(
            f"{option} takes comma-separated integers (e.g. {DEFAULT_SHOTS}), got {text!r}"
        ) from err


def run(args: argparse.Namespace) -> int:
    """Run the probe, write its files and print the summary; returns 0."""
    from radiologynet.analysis.probe import DEFAULT_C_VALUES, DINOV2_C_VALUES, probe

    named = [_named(a) for a in args.features]
    result = probe(
        [path for _, path in named],
        args.out,
        names=[name for name, _ in named],
        methods=[m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None,
        metric=args.metric,
        task=args.task,
        seed=args.seed,
        n_resamples=args.bootstrap,
        c_values=DINOV2_C_VALUES if args.c_grid == "dinov2" else DEFAULT_C_VALUES,
        k=args.k,
        temperature=args.temperature,
        shots=_integers("--shots", args.shots),
        draws=args.draws,
        threads=args.threads or None,
    )
    print(result.summary)
    print()
    print(f"Results in {args.out}: " + ", ".join(sorted(p.name for p in result.files.values())))
    return 0
