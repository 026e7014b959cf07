"""The ``dualbench`` command: each pipeline stage callable without Snakemake; a user-fixable
error ends it in one line on stderr (dualbench.errors)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dualbench.config.vocabulary import PRECISION_DTYPES, model_names
from dualbench.errors import user_errors_exit


def _cmd_check_config(args) -> None:
    from dualbench import config
    from dualbench.hardware import Machine

    cfg = config.load(args.config, Machine())
    for line in cfg["resolved"]["notes"] + cfg["resolved"]["warnings"]:
        print(f"{args.config}: {line}")
    sessions = len(cfg["scenarios"]) * len(cfg["precisions"])
    per_round = sum(
        len(cfg["layouts"]) + (len(sc["sweep"]["fractions"]) if sc["sweep"] else 0)
        for sc in cfg["scenarios"].values()
    ) * len(cfg["precisions"])
    rounds = {sc["rounds"] for sc in cfg["scenarios"].values()}
    calibrations = len(model_names(cfg)) * len(config.calibration_dtypes(cfg))
    print(
        f"{args.config}: valid ({sessions} sessions, {per_round} trials a round, rounds "
        f"{', '.join(map(str, sorted(rounds, key=str)))}; {calibrations} calibrations)"
    )


def _cmd_fetch(args) -> None:
    from dualbench.models.sources import fetch

    print(json.dumps(fetch(args.source, Path(args.out), args.seed), indent=2))


def _cmd_convert(args) -> None:
    from dualbench.models.convert import convert

    int4 = {
        "group_size": args.group_size,
        "symmetric": args.symmetric,
        "quantize_lm_head": args.quantize_lm_head,
    }
    record = convert(Path(args.base), args.precision, Path(args.out), int4)
    print(json.dumps(record, indent=2))


def _cmd_run(args) -> None:
    from dualbench import config
    from dualbench.hardware import Machine
    from dualbench.measure.runner import run_to_file

    cfg = config.load(args.config, Machine())
    if args.layout not in cfg["layouts"]:
        raise config.ConfigError(
            f"layout {args.layout!r} is not in the config's layouts "
            f"({', '.join(cfg['layouts'])}); name one of them or add it to layouts"
        )
    spec = config.run_spec(cfg, args.scenario, args.precision, args.layout)
    models = {
        slot: args.models.format(slot=slot, precision=args.precision) for slot in spec["slots"]
    }
    record = run_to_file(spec, models, Path(args.out))
    print(f"{args.out}: status {record['status']} {record['error']}")


def _cmd_aggregate(args) -> None:
    from dualbench.analysis.aggregate import aggregate

    aggregate([Path(p) for p in args.runs], Path(args.out), json.loads(args.models))


def _cmd_report(args) -> None:
    from dualbench.analysis.definitions import DEFINITIONS
    from dualbench.report.render import write_report

    write_report(Path(args.metrics), Path(args.out), args.title, {}, DEFINITIONS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dualbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser(
        "fetch", help="fetch or build a model (synthetic:, hf:, modelscope:, local:)"
    )
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("convert", help="convert a fetched model to a precision")
    p.add_argument("base")
    p.add_argument("precision", choices=sorted(PRECISION_DTYPES))
    p.add_argument("out")
    p.add_argument("--group-size", type=int, default=128, choices=[32, 64, 128, 256])
    p.add_argument("--symmetric", action="store_true", help="int4: no zero points")
    p.add_argument("--quantize-lm-head", action="store_true", help="int4: lm_head too")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("run", help="run one scenario x precision x layout")
    p.add_argument("config")
    p.add_argument("scenario")
    p.add_argument("precision")
    p.add_argument("layout", help="one of the config's layouts, e.g. alone_A or colocated")
    p.add_argument("out", help="run.json to write")
    p.add_argument(
        "--models",
        default="results/models/{slot}/{precision}",
        help="converted model directory pattern (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("aggregate", help="run.json files -> metrics tables")
    p.add_argument("out")
    p.add_argument("runs", nargs="+")
    p.add_argument("--models", default="{}", help='JSON {"<model>": source, ...}')
    p.set_defaults(func=_cmd_aggregate)

    p = sub.add_parser("report", help="metrics tables -> report.html")
    p.add_argument("metrics")
    p.add_argument("out")
    p.add_argument("--title", default="dualbench report")
    p.set_defaults(func=_cmd_report)

    args = parser.parse_args(argv)
    with user_errors_exit():
        args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
