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
