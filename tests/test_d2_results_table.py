"""d2_plugins.results_table: detectron2's evaluation dicts as results.json / results.md."""
import math

import pytest

pytest.importorskip('detectron2', reason='detectron2 is not installed (docs/install.md)')

from d2_plugins.results_table import _finite_or_none, markdown_table, per_task  # noqa: E402

ONE_SET = {'bbox': {'AP': 4.84, 'AP50': 13.58, 'APl': math.nan},
           'segm': {'AP': 2.94, 'AP50': 9.97, 'APl': math.nan}}


def test_one_test_set_keeps_its_tasks():
    assert per_task(ONE_SET) == ONE_SET


def test_several_test_sets_are_named_set_slash_task():
    nested = {'voc_2007_test': {'bbox': {'AP': 50.0}}, 'coco_val': {'bbox': {'AP': 40.0}}}
    assert per_task(nested) == {'voc_2007_test/bbox': {'AP': 50.0},
                                'coco_val/bbox': {'AP': 40.0}}


def test_nan_becomes_none_and_a_dash():
    assert _finite_or_none(math.nan) is None and _finite_or_none(1.5) == 1.5
    table = markdown_table(ONE_SET, 'title')
    assert '| task | AP | AP50 | APl |' in table
    assert '| bbox | 4.84 | 13.58 | - |' in table and '| segm | 2.94 | 9.97 | - |' in table
