"""Writes that never leave a half-written file: to a temporary name beside the target, then
renamed over it (an atomic step on one file system); the temporary is removed on failure."""

import contextlib
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path to write ``path``'s content to; it becomes ``path`` when the
    block succeeds and is removed when it fails. ``suffix`` keeps an extension that a
    writer needs (``".keras"``, ``".png"``)."""
    tmp = f"{path}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a new temporary directory beside ``path``; it becomes ``path`` (which must not
    exist) when the block succeeds and is removed when it fails."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path, obj):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
