"""Atomic file writes: write to a temporary file in the same folder, then rename.

A reader (or a resumed run) never sees a half-written checkpoint or result: either the old
file or the complete new one is there, even when the writer is killed mid-write.
"""
import json
import os
import os.path as osp
import tempfile


def atomic_write(path, write_fn, mode):
    """Call ``write_fn(file)`` on a temp file beside ``path``, then rename it to ``path``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)``, atomically."""
    import torch
    return atomic_write(path, lambda f: torch.save(obj, f), 'wb')


def atomic_write_text(text, path):
    return atomic_write(path, lambda f: f.write(text), 'w')


def atomic_write_json(obj, path):
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + '\n', path)
