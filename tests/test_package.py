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


@pytest.mark.parametrize("module, command", [("keras_ebm", "train"), ("keras_ebm", "evaluate"),
                                             ("keras_ebm", "export"), ("keras_ebm", "tune"),
                                             ("keras_ebm.cli.reference", None)])
def test_help_answers_without_importing_tensorflow(module, command):
    argv = ["keras-ebm", command, "--help"] if command else [module, "--help"]
    probe = (f"import sys\ntry:\n    sys.argv = {argv!r}\n"
             f"    import runpy; runpy.run_module('{module}', run_name='__main__')\n"
             "except SystemExit as exit_:\n    assert exit_.code == 0, exit_.code\n"
             "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)  # a command that ran would train
    assert "--help" in out.stdout
    assert out.stdout.split()[-2:] == ["False", "False"]


REGISTERED = "keras_ebm>EBM keras_ebm>JEM keras_ebm>RBM keras_ebm>ScoreMatching".split()


@pytest.mark.parametrize("first_import", [
    "import keras_ebm",  # then keras
    "import keras_ebm, tensorflow",
    "import keras, keras_ebm",
    "from keras_ebm.samplers.langevin import LangevinSampler",  # a module that needs TensorFlow
    "from keras_ebm import config",
])
def test_keras_reads_keras_ebm_models_whoever_imports_tensorflow_first(first_import):
    probe = (f"{first_import}\nimport keras\n"
             "print(*[name for name in " + repr(REGISTERED) + "\n"
             "        if keras.saving.get_registered_object(name) is not None])")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == REGISTERED, out.stderr[-2000:]


def test_public_names_resolve_on_first_use():
    import keras_ebm

    for name in keras_ebm.__all__:
        assert getattr(keras_ebm, name).__name__ == name
        assert name in dir(keras_ebm)
    with pytest.raises(AttributeError, match="no attribute 'Sampler'"):
        keras_ebm.Sampler  # noqa: B018


def test_the_package_installs_with_its_data_and_command():
    from importlib import metadata

    dist = metadata.distribution("keras-ebm")
    files = {str(f) for f in dist.files or []}
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"keras-ebm": "keras_ebm.cli.main:main"}
    requirements = " ".join(dist.requires or [])
    assert "tensorflow" in requirements and "keras-tuner" in requirements
    # An editable install points at the checkout; a regular one carries the data files.
    if not any(name.endswith(".pth") or "__editable__" in name for name in files):
        assert any(name.endswith("data/files/mnist.npz") for name in files)
        assert any(name.endswith("mnist_reference_classifier.keras") for name in files)


LAYERS = [  # a module may import only from its own layer or lower ones
    {"config", "files", "distribute", "plotting", "startup"},
    {"data", "samplers"},
    {"models"},
    {"evaluation", "export", "restoration"},
    {"training"},
    {"cli", "__main__"},
]


def _module_imports():
    """``{module: {keras_ebm modules it imports, at any depth of its code}}`` for every module
    of the package except its root ``__init__`` (the public names, gathered from all layers)."""
    import ast

    package = os.path.join(ROOT, "keras_ebm")
    modules = {}
    for directory, _, names in os.walk(package):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    graph = {}
    for module, path in modules.items():
        if module == "keras_ebm":
            continue
        targets = set()
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_ebm"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("keras_ebm"))
        graph[module] = targets - {"keras_ebm", module}
    return graph


def test_the_package_has_no_import_cycle_and_no_upward_import():
    graph = _module_imports()

    def layer(module):
        part = module.split(".")[1]
        return next(i for i, names in enumerate(LAYERS) if part in names)

    upward = [f"{m} -> {t}" for m, targets in graph.items() for t in targets
              if layer(t) > layer(m)]
    assert not upward, upward
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join(path + [module])
        state[module] = "open"
        for target in graph.get(module, ()):
            visit(target, path + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
