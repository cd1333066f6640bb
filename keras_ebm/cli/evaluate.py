"""``keras-ebm evaluate RUN_DIR_OR_MODEL.keras``: calibration, OOD detection and sample
quality of a trained model (:mod:`keras_ebm.evaluation.report`)."""

import argparse
import json
import os
import sys

from keras_ebm import config as config_lib


def main(argv=None):
    parser = argparse.ArgumentParser(prog="keras-ebm evaluate",
                                     description="How good is a trained EBM? Calibration, OOD "
                                                 "detection and sample quality in one call.")
    parser.add_argument("model", help="a run directory (its final weights, checkpoints/last.keras) "
                                      "or a .keras file")
    parser.add_argument("--out", help="where to write (default: <run dir>/evaluation, else beside "
                                      "the file)")
    parser.add_argument("--dataset", default=None,
                        help="the images the model was trained on: mnist, tfds:NAME (default: the "
                             "run's, else mnist); any but MNIST gets its own reference classifier, "
                             "trained once and kept in the output directory")
    parser.add_argument("--data_file", default=None,
                        help="an MNIST-style .npz the model was trained on (default: the run's)")
    parser.add_argument("--samples", type=int, default=500, help="unconditional samples per seed")
    parser.add_argument("--steps", type=int, default=None,
                        help="Langevin steps of the sample chains (default: the run's --eval_steps; for "
                             "a bare .keras file 50 with class-Gaussian starts, else 500; the "
                             "model's noise-free refinement steps follow)")
    parser.add_argument("--num_test", type=int, default=10000, help="test images used")
    parser.add_argument("--warm_start", type=float, default=0.8,
                        help="also score conditional chains that run this share of their steps on E(x) first")
    args = parser.parse_args(argv)
    from keras_ebm import data  # after parsing: --help stays quick
    from keras_ebm.evaluation.report import evaluate_model, floor_images, format_table
    from keras_ebm.export import ExportError, load_for_export
    from keras_ebm.models.ebm import EBM
    from keras_ebm.models.score_matching import ScoreMatching

    try:
        if args.samples < 10 or (args.steps is not None and args.steps < 0) or args.num_test < 10:
            raise ExportError("--samples and --num_test must be >= 10 and --steps >= 0")
        if args.samples > config_lib.MAX_SAMPLES_PER_CALL:
            raise ExportError(f"--samples must be at most {config_lib.MAX_SAMPLES_PER_CALL} (the "
                              f"chains run side by side), got {args.samples}")
        if not 0 <= args.warm_start <= 1:
            raise ExportError(f"--warm_start must be a share in [0, 1], got {args.warm_start}")
        run_config = {}
        if os.path.isfile(os.path.join(args.model, "config.json")):
            with open(os.path.join(args.model, "config.json")) as f:
                run_config = json.load(f)
        dataset = args.dataset or run_config.get("dataset", "mnist")
        data_file = (args.data_file if args.dataset or args.data_file
                     else run_config.get("data_file"))
        if dataset.startswith("toy:"):
            raise ExportError(f"{args.model} models the toy density {dataset}; it was scored by "
                              "its distances to the true density at the end of training "
                              "(evaluation/evaluation.json); this command scores image models")
        model, pad = load_for_export(args.model, accepted=(EBM, ScoreMatching))
        # A run's own validation split is held out from its training: the FID floor uses it.
        splits = data.load_dataset(dataset, data_file, run_config.get("validation_size", 0),
                                   seed=run_config.get("seed", 0))
        model_shape = tuple(model.sample_shape)
        image_shape = (model_shape[0] - 2 * pad, model_shape[1] - 2 * pad, *model_shape[2:])
        if image_shape != tuple(splits.image_shape):
            raise ExportError(f"{args.model} generates {'x'.join(map(str, image_shape))} images; "
                              f"{data_file or dataset} holds "
                              f"{'x'.join(map(str, splits.image_shape))} images. Pass the "
                              "dataset it was trained on with --dataset or --data_file")
        held_out = len(floor_images(splits, args.samples)[1])
        if held_out < args.samples:
            raise ExportError(f"--samples {args.samples} needs as many held-out images for the "
                              f"FID floor; {data_file or dataset} has {held_out}: lower --samples")
    except (ExportError, data.DataError) as err:
        print(f"error: {config_lib.in_flag_terms(str(err))}", file=sys.stderr)
        return 2
    out = args.out or (args.model if os.path.isdir(args.model) else os.path.dirname(args.model))
    out = os.path.join(out, "evaluation") if not args.out else out
    steps = args.steps if args.steps is not None else run_config.get("eval_steps")
    if steps is None:  # a bare .keras file: train.py's default for its kind of chain start
        steps = config_lib.Config(chain_start=getattr(model, "chain_start", "uniform")).eval_steps
    results = evaluate_model(model, splits, out, pad=pad, num_samples=args.samples,
                             steps=steps, num_test=args.num_test, warm_start=args.warm_start)
    print(format_table(results))
    print(f"\nWrote {out}/evaluation.json and figures.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
