"""The arithmetic of the benchmark scripts that decide recipes (no training here)."""

import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import bench_frontier  # noqa: E402
import bench_ood_scores  # noqa: E402
import bench_score_matching  # noqa: E402
import bench_calibration  # noqa: E402
import bench_yardstick  # noqa: E402


def cell(recipe, seed, fid_ratio, accuracy):
    ood = {"flipped_vertical": 0.87, "letters": 0.96}
    return {"recipe": recipe, "seed": seed, "date": "2026-12-03", "epochs_run": 9,
            "accuracy": accuracy, "ece": 0.005, "fid_ratio": fid_ratio,
            "conditional_accuracy": 1.0, "worst_class_accuracy": 1.0, "coverage": 10, "long_chain_fid_ratio": 1.2, "ood_best_auroc": ood}


def row(text, label):
    return next(line for line in text.splitlines() if line.startswith(f"| {label} |"))


def test_the_comparison_pairs_cells_by_seed_and_reads_differences_against_their_spread():
    rows = [cell("informative-k10", 1, 4.0, 0.9910), cell("informative-k10-alpha5", 1, 3.0, 0.9920),
            cell("informative-k10", 2, 3.0, 0.9930), cell("informative-k10-alpha5", 2, 2.2, 0.9900),
            cell("informative-k10", 3, 3.5, 0.9920), cell("informative-k10-alpha5", 3, 2.6, 0.9930),
            cell("informative-k10-alpha5", 4, 1.0, 0.9990)]  # no baseline cell: left out
    text = bench_frontier.compare(rows, "informative-k10", "informative-k10-alpha5")
    assert "s4" not in text
    # FID / floor differences -1.0, -0.8, -0.9: mean -0.9, std 0.1 -> lower is better.
    assert row(text, "FID / floor").endswith("| -0.90 ± 0.10 | better |")
    # accuracy differences +0.1, -0.3, +0.1 points: mean -0.03, std 0.23 -> inside the spread.
    assert row(text, "test accuracy %").endswith("| -0.03 ± 0.23 | inside the spread |")
    assert row(text, "AUROC letters").endswith("| +0.000 ± 0.000 | inside the spread |")
    assert row(text, "epochs") == "| epochs | 9 | 9 | 9 | 9 | 9 | 9 | | |"


def test_the_comparison_needs_a_seed_with_both_recipes():
    rows = [cell("informative-k10", 1, 4.0, 0.99), cell("informative-k10-alpha5", 2, 3.0, 0.99)]
    with pytest.raises(ValueError, match="no seed has cells of both"):
        bench_frontier.compare(rows, "informative-k10", "informative-k10-alpha5")


def test_the_comparison_refuses_cells_of_two_budgets():
    rows = [dict(cell("informative-k10", 1, 4.0, 0.99), budget=15),
            dict(cell("informative-k10-alpha5", 1, 3.0, 0.99), budget=45)]
    with pytest.raises(ValueError, match=r"budgets \[15, 45\]"):
        bench_frontier.compare(rows, "informative-k10", "informative-k10-alpha5")


def test_recorded_cells_are_re_read_against_their_seeds_floor(tmp_path):
    for seed, fid, floor in ((1, 20.0, 8.0), (2, 30.0, 12.0)):
        (tmp_path / f"r-b45-s{seed}.json").write_text(json.dumps(
            {"recipe": "r", "budget": 45, "seed": seed, "fid": fid, "fid_ratio": fid / floor}))
    (row,) = bench_yardstick.reread_cells([str(tmp_path)], {1: 10.0, 2: 10.0})
    # recorded 2.5 and 2.5; re-read 2.0 and 3.0: mean 2.5, std 0.71
    assert row.endswith("| r | 45 | 1,2 | 2.50 ± 0.00 | 2.50 ± 0.71 | 2.00, 3.00 |")


def test_the_ece_cell_never_averages_calibrated_and_uncalibrated_seeds():
    calibrated = [dict(ece=0.002, ece_uncalibrated=0.006, temperature=0.8),
                  dict(ece=0.004, ece_uncalibrated=0.008, temperature=0.9)]
    assert bench_frontier.ece_cell(calibrated) == "0.30 ± 0.14 (T = 1: 0.70 ± 0.14)"
    # One seed from before calibration: every seed's figure at temperature 1.
    assert bench_frontier.ece_cell([calibrated[0], dict(ece=0.010)]) == "0.80 ± 0.28 (T = 1)"


def test_the_comparison_reads_the_ece_at_temperature_1_unless_both_sides_are_calibrated():
    rows = [cell("a", 1, 2.0, 0.99), cell("a", 2, 2.1, 0.99), cell("b", 1, 2.0, 0.99),
            cell("b", 2, 2.1, 0.99)]
    rows[2].update(ece=0.001, ece_uncalibrated=0.007, temperature=0.8)
    rows[3].update(ece=0.002, ece_uncalibrated=0.009, temperature=0.8)
    text = bench_frontier.compare(rows, "a", "b")
    assert row(text, "ECE % at temperature 1").split(" | ")[1:5] == ["0.50", "0.70", "0.50", "0.90"]
    assert "ECE % calibrated" not in text
    for r in rows[:2]:
        r.update(ece_uncalibrated=r["ece"], temperature=1.0)
    assert row(bench_frontier.compare(rows, "a", "b"), "ECE % calibrated").split(" | ")[1:5] == [
        "0.50", "0.10", "0.50", "0.20"]


def test_a_run_trained_before_calibration_is_calibrated_on_its_validation_split(tmp_path):
    import keras
    import numpy as np

    from keras_ebm import data
    from keras_ebm.models import networks
    from keras_ebm.models.calibration import fit_temperature
    from keras_ebm.models.ebm import JEM

    keras.utils.set_random_seed(0)
    model = JEM(networks.get_network("mlp", num_outputs=10, hidden_units=(16,)), buffer_size=10,
                seed=0)
    (tmp_path / "checkpoints").mkdir()
    model.save(tmp_path / "checkpoints" / "last.keras")
    config = {"dataset": "mnist", "data_file": None, "validation_size": 300, "subset": None,
              "seed": 3, "pad": 0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    splits = data.load_dataset("mnist", None, 300, None, 3)
    logits = model(data.preprocess(splits.x_val).numpy()).numpy()
    expected = fit_temperature(logits, splits.y_val)
    assert bench_frontier.calibrate_run(str(tmp_path)) == pytest.approx(expected, rel=1e-5)
    saved = keras.saving.load_model(tmp_path / "checkpoints" / "last.keras")
    assert saved.temperature == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(saved(data.preprocess(splits.x_val[:5]).numpy()), logits[:5],
                               rtol=1e-5)
    # Calibrated weights are kept as they are.
    assert bench_frontier.calibrate_run(str(tmp_path)) == saved.temperature


def test_calibrating_a_run_without_a_validation_split_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({"validation_size": 0}))
    with pytest.raises(ValueError, match="no checkpoints/last.keras"):
        bench_frontier.calibrate_run(str(tmp_path))


def test_two_fold_calibration_helps_an_under_confident_classifier_and_not_a_calibrated_one():
    import numpy as np

    rng = np.random.default_rng(0)
    logits = 4.0 * rng.normal(size=(6000, 10))
    drawn = lambda t: (bench_calibration.metrics.softmax(logits / t).cumsum(-1)  # noqa: E731
                       > rng.uniform(size=(6000, 1))).argmax(-1)
    # Labels drawn at temperature 0.5: logits at 1 are under-confident; scaling fixes it.
    plain, calibrated = bench_calibration.two_fold(logits, drawn(0.5))
    assert plain > 0.05 and calibrated < 0.02
    # Labels drawn at temperature 1: already calibrated (ECE at its finite-sample level).
    plain, calibrated = bench_calibration.two_fold(logits, drawn(1.0))
    assert plain < 0.03 and abs(calibrated - plain) < 0.01


def test_a_cells_best_auroc_is_over_the_scores_every_cell_has(tmp_path):
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "test_metrics.json").write_text(json.dumps(
        {"train_seconds": 600, "epochs_run": 5, "diverged": None}))
    scores = lambda *aurocs: {score: {"auroc": a} for score, a in zip(  # noqa: E731
        ("log_px", "grad_norm", "max_prob", "max_logit", "feature_mahalanobis"), aurocs)}
    evaluation = {"accuracy": 0.99, "ece": 0.003, "langevin_steps": 50, "refine_steps": 50,
                  "unconditional": {"classifier_fid": {"mean": 20, "floor": 10, "ratio_to_floor": 2},
                                    "label_coverage": 10},
                  "conditional_sample_accuracy": 0.99, "conditional_sample_accuracy_per_class": [0.9, 1],
                  "long_chain": {"fid_ratio_to_stated_steps": 1.1, "label_coverage": 10},
                  "nearest_train_distance": {"samples": 9, "test_images": 8},
                  "ood": {"letters": scores(0.8, 0.9, 0.95, 0.85, 0.99),
                          "flipped_vertical": scores(0.7, 0.8, 0.88, 0.75, 0.87)}}
    (tmp_path / "evaluation" / "evaluation.json").write_text(json.dumps(evaluation))
    summary = bench_frontier.summarise(str(tmp_path))
    assert summary["ood_best_auroc"] == {"letters": 0.95, "flipped_vertical": 0.88}
    assert summary["ood_mahalanobis_auroc"] == {"letters": 0.99, "flipped_vertical": 0.87}
    assert summary["worst_class_accuracy"] == 0.9 and summary["train_wall_minutes"] == 10


def test_decompose_refuses_what_is_not_a_toy_mixture_run_before_any_work(tmp_path):
    import subprocess

    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "bench_toy.py")
    missing = subprocess.run([sys.executable, script, "--decompose", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "lacks" in missing.stderr and "config.json" in missing.stderr
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.keras").write_text("")
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "toy:checkerboard"}))
    board = subprocess.run([sys.executable, script, "--decompose", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert board.returncode == 1 and "not a mixture of diagonal Gaussians" in board.stderr
    assert "| run |" not in board.stdout  # refused before the table


def score_matching_cell(trainer, seed, ratio, cpu="Intel(R) Xeon(R) Processor", budget=5.0):
    return {"trainer": trainer, "seed": seed, "budget": budget, "epochs": 10 + seed,
            "steps": 500, "ratio": ratio, "coverage": 9 + seed % 2, "long_chain_ratio": 1.1,
            "train_wall_minutes": 7.0, "auroc_log_px": {"letters": 0.8 + seed / 100},
            "machine": f"2 cores, {cpu}, TensorFlow 2.21.0 (oneDNN kernels on)"}


def test_score_matching_cells_are_averaged_per_trainer_budget_and_cpu(tmp_path):
    cells = [score_matching_cell("dsm", 1, 100.0), score_matching_cell("dsm", 3, 110.0),
             score_matching_cell("dsm", 2, 90.0), score_matching_cell("cd", 1, 40.0),
             score_matching_cell("cd", 2, 50.0, cpu="AMD EPYC 7B13"),
             score_matching_cell("cd", 3, 45.0, budget=10.0)]
    for cell_ in cells:
        bench_score_matching.record(cell_, "python benchmarks/bench_score_matching.py", tmp_path)
    groups = bench_score_matching.read_cells(5.0, tmp_path)
    assert sorted(groups) == [("cd", "AMD EPYC 7B13"), ("cd", "Intel Xeon"), ("dsm", "Intel Xeon")]
    text = bench_score_matching.seeds_table(groups)
    # dsm: 100, 90, 110 -> mean 100, sample std 10, seeds in order
    assert row(text, "dsm").startswith(
        "| dsm | Intel Xeon | 1,2,3 | 11/12/13 | 500/500/500 | **100.0 ± 10.0** (100.0, 90.0, 110.0) "
        "| 10, 9, 10 | 1.10 ± 0.00 |")
    assert row(text, "dsm").endswith("| 0.820 ± 0.010 |")
    assert "**40.0** (40.0)" in text and "**50.0** (50.0)" in text and "45.0" not in text


def test_the_score_matching_table_without_cells_of_that_budget_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench_score_matching.main(["--table", "--budget_minutes", "7.5"])
    assert "no recorded cell of 7.5 CPU minutes" in capsys.readouterr().err


def test_the_ood_table_averages_every_score_the_cells_share():
    rows = [{"ood_auroc": {"letters": {"log_px": 0.8, "combined": 0.90, "only_here": 0.5},
                           "inverted": {"log_px": 1.0, "combined": 1.0, "only_here": 0.5}}},
            {"ood_auroc": {"letters": {"log_px": 0.9, "combined": 0.94},
                           "inverted": {"log_px": 1.0, "combined": 0.98}}}]
    text = bench_frontier.scores_table(rows)
    assert text.splitlines()[0] == "| score | inverted | letters |"
    assert row(text, "log_px") == "| log_px | 1.000 ± 0.000 | 0.850 ± 0.071 |"
    assert row(text, "combined") == "| combined | 0.990 ± 0.014 | 0.920 ± 0.028 |"
    assert "only_here" not in text


def test_candidate_ood_sums_standardise_each_part_on_the_held_out_scores():
    rng = np.random.default_rng(0)
    reference = {name: rng.normal(loc, spread, 400) for name, loc, spread in (
        ("log_px", -5.0, 2.0), ("grad_norm", -30.0, 10.0), ("max_prob", 0.9, 0.05),
        ("layer_mahalanobis", 0.0, 3.0), ("mahalanobis_layer_0", -40.0, 8.0),
        ("mahalanobis_layer_1", -60.0, 12.0), ("orientation", -0.5, 0.4),
        ("knn_layer_0", 0.9, 0.02), ("knn_layer_1", 0.8, 0.05))}
    combine = bench_ood_scores.candidates(reference)
    every_layer = combine["sum: log_px + grad_norm + every layer"]
    assert sorted(every_layer.stats) == ["grad_norm", "log_px", "mahalanobis_layer_0",
                                         "mahalanobis_layer_1"]
    assert sorted(combine["sum: log_px + grad_norm + every layer + orientation"].stats) == [
        "grad_norm", "log_px", "mahalanobis_layer_0", "mahalanobis_layer_1", "orientation"]
    assert sorted(combine["min: knn of every layer + orientation"].stats) == [
        "knn_layer_0", "knn_layer_1", "orientation"]
    for name, candidate in combine.items():  # standardised parts: sums have mean 0 on them
        if name.startswith("sum"):
            assert abs(candidate(reference).mean()) < 1e-9
        else:  # the smallest part of each image
            parts = candidate.standardized(reference)
            np.testing.assert_allclose(candidate(reference), parts.min(0))
            assert parts.shape == (len(candidate.stats), 400)
    shifted = dict(reference, log_px=reference["log_px"] - 2.0 * reference["log_px"].std())
    np.testing.assert_allclose(every_layer(shifted) - every_layer(reference), -2.0)
    table = {"letters": {"a": 0.91234}, "constant": {"a": 1.0}}
    assert bench_ood_scores.markdown(table).splitlines()[2] == "| a | 1.000 | 0.912 |"
