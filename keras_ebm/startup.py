"""What keras_ebm does when TensorFlow is imported after it.

The package root imports no TensorFlow, so ``keras-ebm train --help`` answers at once. The
root puts a :class:`TensorFlowImportWatcher` on ``sys.meta_path`` instead: whoever imports
TensorFlow or Keras first (user code, a keras_ebm module, a command after parsing its flags),
the C++ start-up lines TensorFlow logs before it reads ``TF_CPP_MIN_LOG_LEVEL`` stay off the
terminal, and once that import is complete the package's model classes are registered with
Keras, so ``keras.saving.load_model`` reads keras_ebm's ``.keras`` files.
"""

import importlib.abc
import os
import sys

WATCHED_TOP_LEVEL = ("tensorflow", "keras")  # whose import is muted and awaited


class TensorFlowImportWatcher(importlib.abc.MetaPathFinder):
    """Calls ``on_loaded()`` once, when TensorFlow has been imported and no import of
    TensorFlow, Keras or a keras_ebm module is still running (so that ``on_loaded`` never
    meets a half-initialised module). With ``mute_stderr``, file descriptor 2 points at
    /dev/null while TensorFlow or Keras executes; Python exceptions still surface."""

    def __init__(self, on_loaded, mute_stderr=True):
        self.on_loaded, self.mute_stderr = on_loaded, mute_stderr
        self.running = 0  # watched imports in progress
        self.muted = 0  # muted imports in progress
        self.saved_stderr = None

    def find_spec(self, name, path, target=None):
        if name not in WATCHED_TOP_LEVEL and not name.startswith("keras_ebm."):
            return None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        else:
            return None
        if hasattr(spec.loader, "exec_module"):
            mute = self.mute_stderr and name in WATCHED_TOP_LEVEL
            spec.loader = _WatchedLoader(spec.loader, self, mute)
        return spec

    def enter(self, mute):
        self.running += 1
        if mute:
            if not self.muted:
                sys.stderr.flush()
                self.saved_stderr = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            self.muted += 1

    def leave(self, mute):
        if mute:
            self.muted -= 1
            if not self.muted:
                sys.stderr.flush()
                os.dup2(self.saved_stderr, 2)
                os.close(self.saved_stderr)
                self.saved_stderr = None
        self.running -= 1
        if not self.running and "tensorflow" in sys.modules and self in sys.meta_path:
            sys.meta_path.remove(self)
            self.on_loaded()


class _WatchedLoader(importlib.abc.Loader):
    """The module's own loader, run between the watcher's ``enter`` and ``leave``."""

    def __init__(self, loader, watcher, mute):
        self.loader, self.watcher, self.mute = loader, watcher, mute

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps no wrapper
        self.watcher.enter(self.mute)
        try:
            self.loader.exec_module(module)
        finally:
            self.watcher.leave(self.mute)

    def __getattr__(self, name):  # get_code, get_filename, resource readers, ...
        return getattr(self.loader, name)


def watch(on_loaded, mute_stderr):
    """Call ``on_loaded()`` now if TensorFlow is loaded, else once its import completes."""
    if "tensorflow" in sys.modules:
        on_loaded()
    elif not any(isinstance(f, TensorFlowImportWatcher) for f in sys.meta_path):
        sys.meta_path.insert(0, TensorFlowImportWatcher(on_loaded, mute_stderr))
