"""The import boundary: only vissl_plugins may import VISSL.

densessl/ is framework-free; mmseg_plugins, d2_plugins, virb and converters adapt it to their
own framework and must run where VISSL is not installed. Each check runs in a fresh
interpreter, so modules imported by other tests cannot hide an import.
"""
import importlib.util
import subprocess
import sys

import pytest

VISSL_MODULES = ('vissl', 'vissl_plugins', 'classy_vision')

CHECK = '''
import sys
{imports}
leaked = sorted(name for name in sys.modules
                if name.split('.')[0] in {forbidden!r})
print('LEAKED:' + ','.join(leaked))
'''


def _leaked(imports, forbidden=VISSL_MODULES):
    proc = subprocess.run([sys.executable, '-c', CHECK.format(imports=imports, forbidden=forbidden)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [line for line in proc.stdout.splitlines() if line.startswith('LEAKED:')][-1]
    return [name for name in line[len('LEAKED:'):].split(',') if name]


@pytest.mark.parametrize('package', ['mmseg_plugins', 'd2_plugins', 'virb', 'virb.runner',
                                     'virb.tasks', 'converters', 'densessl', 'densessl.vice',
                                     'densessl.slotcon'])
def test_package_imports_no_vissl(package):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f'{package} does not exist yet')
    if package == 'd2_plugins' and importlib.util.find_spec('detectron2') is None:
        pytest.skip('detectron2 is not installed (docs/install.md)')
    assert _leaked(f'import {package}') == []


def test_building_the_vice_backbone_imports_no_vissl():
    imports = ('import mmseg_plugins\n'
               'from mmseg.registry import MODELS\n'
               'MODELS.build(dict(type="ViCEBackbone", trunk=dict(depth=18, '
               'decoder_channels=8, out_feat_dim=8)))')
    assert _leaked(imports) == []


def test_the_check_sees_an_import_of_vissl():
    """The check itself: importing vissl_plugins is reported (so the tests above can fail)."""
    assert 'vissl_plugins' in _leaked('import vissl_plugins')


@pytest.mark.parametrize('package, other', [('d2_plugins', ('mmseg', 'mmseg_plugins', 'mmengine')),
                                            ('mmseg_plugins', ('detectron2', 'd2_plugins')),
                                            ('virb', ('mmseg', 'mmseg_plugins', 'mmengine',
                                                      'detectron2', 'd2_plugins')),
                                            ('virb.runner', ('mmseg', 'mmseg_plugins',
                                                             'mmengine', 'detectron2',
                                                             'd2_plugins'))])
def test_plugin_packages_import_no_other_framework(package, other):
    if package == 'd2_plugins' and importlib.util.find_spec('detectron2') is None:
        pytest.skip('detectron2 is not installed (docs/install.md)')
    assert _leaked(f'import {package}', forbidden=other) == []
