"""The manifest every training or evaluation run writes beside its results.

``manifest.json`` records what is needed to re-run or audit a result: the command line,
the full config, the seeds, the git commit (and whether the tree was dirty), the package
versions and the machine.
"""
import datetime
import os
import os.path as osp
import platform
import subprocess
import sys

from densessl.atomic_io import atomic_write_json

# distribution names as pip knows them (mmcv-lite provides the mmcv import)
PACKAGES = ('torch', 'torchvision', 'numpy', 'vissl', 'classy-vision', 'mmengine', 'mmcv-lite',
            'mmcv', 'mmsegmentation', 'detectron2', 'opencv-contrib-python-headless', 'scikit-image', 'densessl')
REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def package_versions(names=PACKAGES):
    """{distribution: version or None when not installed}."""
    from importlib import metadata
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(repo=REPO_ROOT):
    """(commit, dirty) of the checkout the code runs from; (None, None) outside git."""
    def git(*args):
        return subprocess.run(['git', '-C', repo, *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        commit = git('rev-parse', 'HEAD') or None
        dirty = bool(git('status', '--porcelain', '--untracked-files=no')) if commit else None
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit, dirty


def build_manifest(config, seeds, kind, argv=None):
    commit, dirty = git_state()
    return {
        'kind': kind,
        'created': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'command_line': list(sys.argv if argv is None else argv),
        'cwd': os.getcwd(),
        'git_commit': commit,
        'git_dirty': dirty,
        'seeds': seeds,
        'packages': package_versions(),
        'python': sys.version.split()[0],
        'platform': platform.platform(),
        'env': {k: os.environ[k] for k in ('OMP_NUM_THREADS', 'CUDA_VISIBLE_DEVICES',
                                           'WORLD_SIZE', 'RANK') if k in os.environ},
        'config': config,
    }


def write_manifest(out_dir, config, seeds, kind, argv=None, filename='manifest.json'):
    """Write ``out_dir/manifest.json``; ``config`` must be JSON-able (dicts, lists, scalars)."""
    path = osp.join(out_dir, filename)
    atomic_write_json(build_manifest(config, seeds, kind, argv), path)
    return path
