"""Command line for hyperparameter search: ``keras-ebm tune [flags]``.

Takes every ``train.py`` flag (the base configuration) plus the search's own,
writes into one run directory (``config.json``, ``tune.log``, ``tuner/`` with
keras-tuner's trials, ``trials.json``, ``best_hyperparameters.json``) and
prints the trials and the best hyperparameters as ``train.py`` flags.
"""

import contextlib
import os
import sys
import time

from keras_ebm import config as config_lib

TUNING_FLAGS = ("max_trials", "samples_per_class", "score_steps")


def main(argv=None):
    parser = config_lib.build_parser()
    parser.description = "Search JEM hyperparameters with keras-tuner (objective: val_hybrid)."
    parser.add_argument("--max_trials", type=int, default=4, help="hyperparameter sets to train")
    parser.add_argument("--samples_per_class", type=int, default=10,
                        help="class-conditional samples per class for the generation score")
    parser.add_argument("--score_steps", type=int, default=100,
                        help="Langevin steps from noise for the generation score")
    args = vars(parser.parse_args(argv))
    from keras_ebm import data  # after parsing: --help stays quick
    from keras_ebm.training import experiment, tuning
    from keras_ebm.training.run_dir import create_run_dir, setup_logging

    search_args = {k: args.pop(k) for k in TUNING_FLAGS}
    try:
        if min(search_args.values()) <= 0:
            raise ValueError(f"--max_trials, --samples_per_class and --score_steps must be > 0, "
                             f"got {search_args}")
        config = config_lib.Config(**args).validate()
        if config.model != "jem":
            raise ValueError("tuning needs --model jem (the objective uses classification)")
        splits = data.load_dataset(config.dataset, config.data_file, config.validation_size,
                                   config.subset, config.seed)
        config.out = config.out or os.path.join("runs", "tune-" + time.strftime("%Y%m%d-%H%M%S"))
        create_run_dir(config.out)
    except (ValueError, experiment.RunError) as err:
        print(f"error: {config_lib.in_flag_terms(str(err))}", file=sys.stderr)
        return 2
    setup_logging(config.log_file or os.path.join(config.out, "tune.log"))
    with open(os.path.join(config.out, "config.json"), "w") as f:
        f.write(config.to_json())
    errors_log = os.path.join(config.out, "trial_errors.log")
    try:  # keras-tuner prints a failing trial's traceback: it goes to the errors log
        with open(errors_log, "w") as errors, contextlib.redirect_stderr(errors):
            best, tuner = tuning.search(config, splits, os.path.join(config.out, "tuner"),
                                        max_trials=search_args["max_trials"],
                                        samples_per_class=search_args["samples_per_class"],
                                        sample_steps=search_args["score_steps"], seed=config.seed)
    except experiment.RunError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # keras-tuner stops the search when a trial fails
        cause = [line for line in str(err).splitlines() if line.strip()][-1:]
        print(f"error: a trial failed ({cause[0].strip() if cause else err}); the search stopped "
              f"and reports no best. The traceback is in {errors_log}; fix the cause and run the "
              "search again with another --out.", file=sys.stderr)
        return 2
    trials = tuning.write_results(config.out, best, tuner)
    print(tuning.format_table(trials))
    print(f"\nBest hyperparameters (saved to {config.out}/best_hyperparameters.json):\n"
          f"  python train.py {tuning.best_as_flags(best)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
