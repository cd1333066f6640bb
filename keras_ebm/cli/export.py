"""``keras-ebm export RUN_DIR OUT_DIR``: a trained model as a SavedModel with named
endpoints (:mod:`keras_ebm.export`)."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-ebm export",
        description="Export a trained keras_ebm model as a SavedModel with named endpoints.",
    )
    parser.add_argument("model", help="a run directory (its final weights, checkpoints/last.keras) or a .keras file")
    parser.add_argument("out_dir", help="the SavedModel directory to create (must not exist)")
    parser.add_argument("--pad", type=int, default=None,
                        help="padding the model was trained with (default: from the run's config.json)")
    args = parser.parse_args(argv)
    from keras_ebm.export import ExportError, export_model, load_for_export  # --help stays quick

    try:
        model, pad = load_for_export(args.model)
        export_model(model, args.out_dir, pad=pad if args.pad is None else args.pad)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Exported {args.model} to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
