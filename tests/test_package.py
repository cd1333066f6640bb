import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import keras_ebm, os; from tensorflow.python.util import _pywrap_util_port as port; "
         "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())")


@pytest.mark.parametrize("setting, expected", [(None, "1 True"), ("0", "0 False")])
def test_importing_keras_ebm_first_turns_on_onednn_unless_the_user_chose(setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split()[-2:] == expected.split()


def test_importing_keras_ebm_keeps_tensorflows_start_up_lines_off_the_terminal(tmp_path):
    probe = "import keras_ebm, tensorflow as tf; print(int(tf.constant(1) + 1))"
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_EBM_TF_LOGS")}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout == "2\n"
    assert not [line for line in out.stderr.splitlines()
                if line[:5] in ("I0000", "W0000", "E0000") or "absl::InitializeLog" in line], out.stderr


def test_the_package_installs_with_its_data_and_command():
    from importlib import metadata

    dist = metadata.distribution("keras-ebm")
    files = {str(f) for f in dist.files or []}
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"keras-ebm": "keras_ebm.cli:main"}
    requirements = " ".join(dist.requires or [])
    assert "tensorflow" in requirements and "keras-tuner" in requirements
    # An editable install points at the checkout; a regular one carries the data files.
    if not any(name.endswith(".pth") or "__editable__" in name for name in files):
        assert any(name.endswith("datasets/mnist.npz") for name in files)
        assert any(name.endswith("mnist_reference_classifier.keras") for name in files)
