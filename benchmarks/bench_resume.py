"""What resuming costs for the default JEM: writing and reading a backup, and
rebuilding the batch stream at the end of a run.

    python benchmarks/bench_resume.py [--repeats 5] [--no_record]

Builds the default ``train.py`` JEM (``cnn_wide``, 10000-image replay buffer) on the
bundled MNIST, times ``keras_ebm.training.state.save`` / ``load`` of its whole training state
(median of ``--repeats``), a training step (median of 20, to put a backup every 100
batches in proportion), and ``state.training_stream`` up to its first batch from
step 0 and from the middle of the last epoch (the worst case of ``--resume``).
Prints the figures and appends them to ``benchmarks/RESULTS.md``.
"""

import argparse
import os
import statistics
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from bench_mnist import append_results, machine  # noqa: E402
from keras_ebm import config as config_lib, data  # noqa: E402
from keras_ebm.training import experiment, state


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no_record", action="store_true", help="print only")
    args = parser.parse_args(argv)

    config = config_lib.Config()
    splits = data.load_dataset(config.dataset, validation_size=config.validation_size)
    prepared = experiment.prepare_data(config, splits)
    model = experiment.build_model(config, prepared.input_shape, splits.num_classes)
    experiment.set_up(model, config, splits)
    experiment.compile_model(model, config, prepared.steps_per_epoch)
    batches = iter(prepared.train)
    model.train_on_batch(*next(batches))  # build and trace
    step = median_seconds(lambda: model.train_on_batch(*next(batches)), 20)

    path = os.path.join(tempfile.mkdtemp(), "backup.npz")
    save = median_seconds(lambda: state.save(model, path, epoch=0, step=0), args.repeats)
    size_mb = os.path.getsize(path) / 2**20
    load = median_seconds(lambda: state.load(model, path), args.repeats)

    def first_batch(start_step):
        train = experiment.prepare_data(config, splits).train  # a fresh pipeline, as on resume
        next(iter(state.training_stream(train, prepared.steps_per_epoch, config.epochs,
                                        start_step)))

    total = config.epochs * prepared.steps_per_epoch
    worst = total - prepared.steps_per_epoch // 2
    from_start = median_seconds(lambda: first_batch(0), args.repeats)
    from_worst = median_seconds(lambda: first_batch(worst), args.repeats)

    every = config.backup_every
    lines = [
        f"training step (batch {config.batch_size}, {config.langevin_steps} Langevin steps): "
        f"{step:.3f} s",
        f"backup write (state.save): {save:.3f} s for {size_mb:.1f} MB; every {every} batches "
        f"that is {100 * save / (every * step):.2f}% of training time",
        f"backup read (state.load): {load:.3f} s",
        f"first batch of the stream from step 0: {from_start:.2f} s; from step {worst} of "
        f"{total} (mid last epoch, the worst resume): {from_worst:.2f} s",
    ]
    print("\n".join(lines))
    if args.no_record:
        return
    append_results(
        f"\n## Resume cost for the default JEM ({time.strftime('%Y-%m-%d')})\n\n"
        f"Command: `python benchmarks/bench_resume.py --repeats {args.repeats}`. Machine: "
        f"{machine()}, CPU only. "
        "Default `train.py` JEM (`cnn_wide`, replay buffer 10000) on bundled MNIST; "
        f"medians of {args.repeats} (training step: of 20).\n\n```\n"
        + "\n".join(lines) + "\n```\n"
    )


if __name__ == "__main__":
    main()
