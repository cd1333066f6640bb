"""The command line explains itself: every flag has help, a default and its choices."""

import dataclasses
import os
import subprocess
import sys

import pytest

from keras_ebm import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_flag_has_help_a_section_and_its_default():
    parser = config_lib.build_parser()
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    fields = {f.name: f for f in dataclasses.fields(config_lib.Config)}
    assert set(actions) == set(fields)
    for name, action in actions.items():
        assert action.help and len(action.help) > 20, f"--{name} has no help"
        assert "(default: " in action.help, f"--{name} does not show its default"
        assert fields[name].metadata["section"] in config_lib.SECTIONS
        choices = fields[name].metadata.get("choices")
        if choices:
            assert all(str(choice) in action.help for choice in choices), name
    titles = {group.title for group in parser._action_groups}
    assert set(config_lib.SECTIONS) <= titles


def test_help_prints_every_flag_grouped(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--help"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for section in config_lib.SECTIONS:
        assert f"\n{section}:" in result.stdout
    for field in dataclasses.fields(config_lib.Config):
        assert f"--{field.name}" in result.stdout


def test_choices_are_enforced_by_the_parser():
    try:
        config_lib.from_args(["--verbose", "3"])
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("--verbose 3 was accepted")


def test_keras_ebm_command_dispatches_to_each_subcommand(capsys):
    from keras_ebm.cli import main as cli_main

    assert cli_main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli_main.COMMANDS)
    assert cli_main.main([]) == 2
    assert cli_main.main(["fit"]) == 2
    assert "unknown command 'fit'" in capsys.readouterr().err
    for command in cli_main.COMMANDS:
        try:
            code = cli_main.main([command, "--help"])
        except SystemExit as exit_:
            code = exit_.code
        assert code in (0, None), command
        assert "--" in capsys.readouterr().out, command


def test_an_interrupted_run_says_how_to_resume(monkeypatch, capsys, tmp_path):
    import signal
    import time

    from keras_ebm.cli import train as train_cli
    from keras_ebm.training import experiment

    def run(config):
        config.out = str(tmp_path / "run")
        os.makedirs(config.out)
        open(os.path.join(config.out, "config.json"), "w").close()
        os.kill(os.getpid(), signal.SIGTERM)  # as a batch scheduler stops a job
        time.sleep(5)

    monkeypatch.setattr(experiment, "run", run)
    assert train_cli.main(["--lr", "0.01", "--out", "elsewhere/", "--epochs", "2"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"keras-ebm train --lr 0.01 --epochs 2 --out {tmp_path / 'run'} --resume" in err
    assert signal.getsignal(signal.SIGTERM) is not train_cli._interrupt  # handler restored
    assert "No run directory was written yet" in train_cli.resume_hint([], str(tmp_path / "nothing"))


def test_library_messages_reach_the_command_line_in_flag_terms(tmp_path, capsys):
    from keras_ebm.cli import train as train_cli

    assert config_lib.in_flag_terms("or pass data_file=PATH (dataset=mnist); x=1") == (
        "or pass --data_file PATH (--dataset mnist); x=1")
    missing = str(tmp_path / "missing.npz")
    assert train_cli.main(["--data_file", missing, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"Data file not found: {missing}" in err and "or pass --data_file PATH" in err


def test_a_compute_budget_alone_decides_the_number_of_epochs():
    assert config_lib.from_args([]).epochs == 15
    assert config_lib.from_args(["--budget_minutes", "60"]).epochs == config_lib.BUDGETED_EPOCHS
    assert config_lib.from_args(["--budget_minutes", "60", "--epochs", "3"]).epochs == 3


def test_the_default_recipe_depends_on_where_chains_start():
    jem = config_lib.from_args([])
    assert (jem.chain_start, jem.langevin_steps, jem.langevin_alpha, jem.refine_steps,
            jem.eval_steps, jem.sample_steps, jem.epochs) == ("class_gaussian", 10, 5.0, 50, 35,
                                                              35, 15)
    uniform = config_lib.from_args(["--chain_start", "uniform"])
    assert (uniform.langevin_steps, uniform.langevin_alpha, uniform.refine_steps,
            uniform.eval_steps) == (20, 10.0, 0, 500)
    ebm = config_lib.from_args(["--model", "ebm"])
    assert (ebm.chain_start, ebm.langevin_steps) == ("uniform", 20)
    chosen = config_lib.from_args(["--langevin_steps", "30", "--eval_steps", "70"])
    assert (chosen.langevin_steps, chosen.eval_steps) == (30, 70)


def test_annealed_score_matching_sets_its_own_step_and_needs_dsm():
    annealed = config_lib.from_args(["--model", "dsm", "--annealed", "--noise_levels", "1,0.05"])
    assert annealed.langevin_alpha == pytest.approx(0.1 * 0.05**2)
    assert config_lib.from_args(["--model", "dsm"]).langevin_alpha == 10.0
    with pytest.raises(ValueError, match="--annealed samples a denoising score-matching energy"):
        config_lib.from_args(["--model", "ebm", "--annealed"])
    with pytest.raises(ValueError, match="one step per noise level \\(3\\): raise --eval_steps 2 to 3"):
        config_lib.from_args(["--model", "dsm", "--annealed", "--noise_levels", "1,0.5,0.1",
                              "--eval_steps", "2"])


def test_noise_conditional_score_matching_builds_a_levelled_model_and_needs_dsm():
    from keras_ebm.training.experiment import build_model

    config = config_lib.from_args(["--model", "dsm", "--dataset", "toy:rings", "--network", "mlp",
                                   "--noise_conditional", "--noise_levels", "0.5,0.02"])
    assert config.langevin_alpha == pytest.approx(0.1 * 0.02**2)
    model = build_model(config, (2,), 1)
    assert model.network.input_shape == (None, 3) and model.sample_shape == (2,)
    assert model.sampler.noise_conditional and model.sampler.noise_levels == (0.5, 0.02)
    with pytest.raises(ValueError, match="--noise_conditional tells a denoising score-matching "
                                         "energy its noise level; use --model dsm"):
        config_lib.from_args(["--model", "ssm", "--noise_conditional"])
    assert not config.continuous_noise and build_model(config_lib.from_args(
        ["--model", "dsm", "--dataset", "toy:rings", "--network", "mlp", "--noise_conditional",
         "--continuous_noise", "--noise_levels", "0.5,0.02"]), (2,), 1).continuous_noise
    with pytest.raises(ValueError, match="--continuous_noise draws the noise level a "
                                         "noise-conditional energy is told"):
        config_lib.from_args(["--model", "dsm", "--continuous_noise"])
    with pytest.raises(ValueError, match="give at least two different levels"):
        config_lib.from_args(["--model", "dsm", "--noise_conditional", "--continuous_noise",
                              "--noise_levels", "0.1"])
    with pytest.raises(ValueError, match="two ways to give each noise level its energy: drop one"):
        config_lib.from_args(["--model", "dsm", "--noise_conditional", "--annealed"])
    with pytest.raises(ValueError, match="one step per noise level \\(3\\): raise --eval_steps 2"):
        config_lib.from_args(["--model", "dsm", "--noise_conditional", "--noise_levels",
                              "1,0.5,0.1", "--eval_steps", "2"])


def test_noise_weight_power_reaches_the_model_and_needs_dsm():
    from keras_ebm.training.experiment import build_model

    config = config_lib.from_args(["--model", "dsm", "--dataset", "toy:rings", "--network", "mlp",
                                   "--noise_weight_power", "0"])
    assert build_model(config, (2,), 1).weight_power == 0.0
    with pytest.raises(ValueError, match="--noise_weight_power weighs the noise levels of --model "
                                         "dsm; drop it for --model ssm"):
        config_lib.from_args(["--model", "ssm", "--noise_weight_power", "1"])
