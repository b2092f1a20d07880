"""Mean teacher, partial labels, labelled subsets and split files (densessl.semisup.
mean_teacher / partial_labels / label_subsets, tools/make_splits.py) against references
written from the spec (shared/specs/semisup.md 1(a), 2(a), 4): the EMA formula parameter by
parameter, the original's dilation loop and ReCo's sampler loop. The references never call
the modules under test."""
import copy
import os
import os.path as osp
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage

from densessl.semisup import label_subsets as ls
from densessl.semisup.mean_teacher import ema_update_parameters_, mean_teacher_momentum
from densessl.semisup.partial_labels import (partial_labels, partial_labels_for_image,
                                             target_count)


# ----------------------------------------------------------------------------- mean teacher
def test_momentum_schedule_values():
    assert mean_teacher_momentum(0) == 0.0          # the first update copies the student
    assert mean_teacher_momentum(1) == 0.5
    assert mean_teacher_momentum(2) == pytest.approx(2 / 3)
    assert mean_teacher_momentum(98) == pytest.approx(98 / 99)
    assert mean_teacher_momentum(99) == pytest.approx(0.99)
    assert mean_teacher_momentum(10 ** 6) == 0.99
    assert mean_teacher_momentum(10 ** 6, max_momentum=0.999) == pytest.approx(0.999)
    with pytest.raises(ValueError):
        mean_teacher_momentum(-1)


def small_net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                               torch.nn.Conv2d(4, 2, 1))


def test_ema_updates_parameters_by_the_formula_and_keeps_teacher_buffers():
    teacher, student = small_net(0), small_net(1)
    teacher[1].running_mean.fill_(3.0)
    teacher[1].num_batches_tracked.fill_(7)
    student[1].running_mean.fill_(-1.0)
    buffers = {k: v.clone() for k, v in teacher.named_buffers()}
    before = {k: v.detach().clone() for k, v in teacher.named_parameters()}
    student_params = dict(student.named_parameters())
    ema_update_parameters_(teacher, student, 0.75)
    for name, param in teacher.named_parameters():
        for index in np.ndindex(*param.shape):
            want = (0.75 * float(before[name][index])
                    + 0.25 * float(student_params[name].detach()[index]))
            assert float(param.detach()[index]) == pytest.approx(want, rel=1e-6, abs=1e-7)
    for name, buf in teacher.named_buffers():
        assert torch.equal(buf, buffers[name]), name
    ema_update_parameters_(teacher, student, 0.0)  # m_0: an exact copy
    for name, param in teacher.named_parameters():
        assert torch.equal(param, student_params[name])
    assert not teacher[0].weight.grad_fn


def test_ema_refuses_different_architectures():
    teacher = small_net(0)
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    with pytest.raises(KeyError, match='only in the teacher'):
        ema_update_parameters_(teacher, other, 0.5)
    wider = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.BatchNorm2d(5),
                                torch.nn.Conv2d(5, 2, 1))
    with pytest.raises(ValueError, match='0.weight'):
        ema_update_parameters_(teacher, wider, 0.5)


def run_ema(teacher, students, first_iteration, start, stop):
    """Mean-teacher updates for iterations start..stop-1, momentum from the iteration."""
    for iteration in range(start, stop):
        ema_update_parameters_(teacher, students[iteration],
                               mean_teacher_momentum(iteration - first_iteration))
    return teacher


def test_ema_schedule_after_a_simulated_resume():
    first, total = 3, 12  # e.g. 3 supervised-only iterations, then semi-supervised ones
    students = {i: small_net(100 + i) for i in range(total)}
    straight = run_ema(small_net(0), students, first, first, total)
    # interrupted after iteration 7: the checkpoint holds the teacher and the iteration
    part = run_ema(small_net(0), students, first, first, 8)
    saved = copy.deepcopy(part.state_dict())
    resumed = small_net(50)
    resumed.load_state_dict(saved)
    resumed = run_ema(resumed, students, first, 8, total)
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name
    # reference: theta_T = sum_t w_t s_t with the closed-form momenta (m_0 = 0 drops the init)
    names = [n for n, _ in straight.named_parameters()]
    for name in names:
        want = 0.0
        for iteration in range(first, total):
            t = iteration - first
            m = min(1 - 1 / (t + 1), 0.99)
            want = m * want + (1 - m) * dict(students[iteration].named_parameters())[name]
        assert torch.allclose(dict(straight.named_parameters())[name], want, atol=1e-6)
    # the teacher equals the running mean of the students while t < 100
    mean = sum(dict(students[i].named_parameters())['0.weight'] for i in range(first, total))
    assert torch.allclose(straight[0].weight, mean / (total - first), atol=1e-6)


# ----------------------------------------------------------------------------- partial labels
def reference_partial(label, mode_fraction, rng, ignore=255):
    """The original's loop: a 1-pixel seed mask dilated with 5x5 ones (not restricted to the
    class) until its intersection with the class holds int(p * n) pixels."""
    out = np.full_like(label, ignore)
    for c in sorted(set(np.unique(label).tolist()) - {ignore}):
        cls = label == c
        ys, xs = np.nonzero(cls)
        k = int(rng.integers(ys.size))
        mask = np.zeros(label.shape, dtype=bool)
        mask[ys[k], xs[k]] = True
        target = int(mode_fraction * cls.sum())
        while (mask & cls).sum() < target:
            mask = ndimage.binary_dilation(mask, structure=np.ones((5, 5), dtype=bool))
        out[mask & cls] = c
    return out


def blob_label(seed, height=40, width=56):
    rng = np.random.default_rng(seed)
    label = np.zeros((height, width), dtype=np.uint8)
    label[:, width // 2:] = 1
    label[height // 2:, :] = 2
    label[rng.random((height, width)) < 0.1] = 3        # scattered class, disconnected
    label[5:9, 5:30] = 255
    label[30:33, 40:44] = 7
    return label


FRACTIONS = {'p0': 0.0, 'p1': 0.01, 'p5': 0.05, 'p25': 0.25}


@pytest.mark.parametrize('mode', sorted(FRACTIONS))
def test_partial_labels_match_the_dilation_loop_and_counts(mode):
    label = blob_label(1)
    got = partial_labels(label, mode, np.random.default_rng(4))
    want = reference_partial(label, FRACTIONS[mode], np.random.default_rng(4))
    assert np.array_equal(got, want)
    assert got.dtype == label.dtype
    for c in (0, 1, 2, 3, 7):
        n = int((label == c).sum())
        labelled = got == c
        assert np.all(label[labelled] == c)
        count = int(labelled.sum())
        if mode == 'p0':
            assert count == 1
        else:
            assert max(1, int(FRACTIONS[mode] * n)) <= count <= n
        assert target_count(n, mode) == int(FRACTIONS[mode] * n)
    assert set(np.unique(got).tolist()) <= {0, 1, 2, 3, 7, 255}


def test_partial_labels_are_per_image_deterministic_and_nested(tmp_path):
    labels = {f'img_{k}': blob_label(k) for k in range(4)}
    first = {i: partial_labels_for_image(lab, 'p5', 0, i) for i, lab in labels.items()}
    again = {i: partial_labels_for_image(labels[i], 'p5', 0, i) for i in reversed(labels)}
    assert all(np.array_equal(first[i], again[i]) for i in labels)
    other_seed = partial_labels_for_image(labels['img_0'], 'p5', 1, 'img_0')
    assert not np.array_equal(first['img_0'], other_seed)
    # the same in a fresh interpreter with another hash seed (no use of Python's hash())
    code = ('import numpy as np, sys; from densessl.semisup.partial_labels import '
            'partial_labels_for_image as f; label = np.load(sys.argv[1]); '
            'np.save(sys.argv[2], f(label, "p5", 0, "img_3"))')
    np.save(str(tmp_path / 'label.npy'), labels['img_3'])
    env = dict(os.environ, PYTHONHASHSEED='12345')
    subprocess.run([sys.executable, '-c', code, str(tmp_path / 'label.npy'),
                    str(tmp_path / 'out.npy')], check=True, env=env, timeout=120)
    assert np.array_equal(np.load(str(tmp_path / 'out.npy')), first['img_3'])
    previous = None
    for mode in ('p0', 'p1', 'p5', 'p25'):
        current = partial_labels_for_image(labels['img_2'], mode, 0, 'img_2') != 255
        if previous is not None:
            assert np.all(current[previous])
        previous = current


# ----------------------------------------------------------------------------- subsets
def reference_reco_sampler(classes, order, num, min_classes, num_classes):
    """get_cityscapes_idx / get_pascal_idx literally, on an already shuffled ``order``."""
    pool, save, labelled = list(order), [], []
    counter = np.zeros(num_classes)
    fill = set(range(num_classes))
    for _ in range(20000):  # the original loops forever when it stalls: fail instead
        if len(labelled) == num:
            return labelled
        if pool:
            idx = pool.pop()
        else:
            pool, save = list(save), []
            idx = pool.pop()
        unique = classes[idx]
        if not labelled and len(unique) >= min_classes:
            labelled.append(idx)
            counter[list(unique)] += 1
        elif fill & set(unique) and len(unique) >= min_classes:
            labelled.append(idx)
            counter[list(unique)] += 1
        else:
            save.append(idx)
        fill = set(np.flatnonzero(counter == counter.min()).tolist())
    raise AssertionError('the reference sampler stalled')


def random_class_sets(num_images, num_classes, seed):
    rng = np.random.default_rng(seed)
    sets = {}
    for k in range(num_images):
        size = int(rng.integers(1, num_classes + 1))
        sets[f'{rng.integers(10 ** 6):06d}_{k}'] = frozenset(
            rng.choice(num_classes, size, replace=False).tolist())
    return sets


@pytest.mark.parametrize('seed,num,min_classes', [(0, 10, 3), (1, 25, 4), (2, 40, 1),
                                                  (0, 50, 3), (1, 60, 2)])
def test_class_balanced_subset_matches_reco_loop(seed, num, min_classes):
    sets = random_class_sets(80, 8, seed)
    ordered = sorted(sets)
    order = [ordered[k] for k in np.random.default_rng(seed).permutation(len(ordered))]
    want = reference_reco_sampler(sets, order, num, min_classes, 8)
    assert ls.class_balanced_subset(sets, num, seed, min_classes) == want
    # the same selection whatever order the directory listing came in
    keys = list(sets)
    random.Random(seed).shuffle(keys)
    assert ls.class_balanced_subset({k: sets[k] for k in keys}, num, seed, min_classes) == want


def test_class_balanced_subset_terminates_where_reco_would_loop():
    sets = random_class_sets(80, 8, 0)
    ordered = sorted(sets)
    order = [ordered[k] for k in np.random.default_rng(0).permutation(len(ordered))]
    with pytest.raises(AssertionError, match='stalled'):
        reference_reco_sampler(sets, order, 60, 2, 8)
    chosen = ls.class_balanced_subset(sets, 60, 0, 2)
    assert len(set(chosen)) == 60 and all(len(sets[i]) >= 2 for i in chosen)
    sets = {f'i{k}': frozenset({0, 1}) for k in range(10)}
    sets['rare'] = frozenset({0, 1, 2})  # class 2 in one image; class 5 nowhere
    chosen = ls.class_balanced_subset(sets, 6, seed=0, min_classes=2)
    assert len(chosen) == 6 and len(set(chosen)) == 6
    with pytest.raises(ValueError, match='only 11 of 11'):
        ls.class_balanced_subset(sets, 12, seed=0, min_classes=2)
    with pytest.raises(ValueError, match='only 1 of 11'):
        ls.class_balanced_subset(sets, 2, seed=0, min_classes=3)


def test_random_subset_ignores_listing_order():
    ids = [f'id{k:03d}' for k in range(50)]
    shuffled = list(ids)
    random.Random(0).shuffle(shuffled)
    assert ls.random_subset(ids, 7, 3) == ls.random_subset(shuffled, 7, 3)
    assert ls.random_subset(ids, 7, 3) != ls.random_subset(ids, 7, 4)
    assert len(set(ls.random_subset(ids, 7, 3))) == 7


def test_u2pl_split_sizes_are_ceil_fractions():
    assert ls.U2PL_SPLIT_SIZES['pascal_classic'] == (92, 183, 366, 732, 1464)
    assert ls.U2PL_SPLIT_SIZES['pascal_blended'] == (662, 1323, 2646, 5291)
    assert ls.U2PL_SPLIT_SIZES['cityscapes'] == (186, 372, 744, 1488)
    for name, pool in (('pascal_classic', 1464), ('pascal_blended', 10582),
                       ('cityscapes', 2975)):
        assert ls.U2PL_LABELLED_POOL[name] == pool
        sizes = [ls.count_for_fraction(pool, f) for f in (1 / 16, 1 / 8, 1 / 4, 1 / 2)]
        assert tuple(sizes) == ls.U2PL_SPLIT_SIZES[name][:4]
    assert ls.count_for_fraction(100, 0.07) == 7  # 100 * 0.07 = 7.000000000000001


# ----------------------------------------------------------------------------- split files
def test_split_round_trip_and_missing_id(tmp_path):
    ids = ['aachen_000000_000001', 'bremen_000000_000002', '2007_000032']
    path = str(tmp_path / 'sub' / 'labeled.txt')
    ls.write_split(path, ids)
    with open(path) as f:
        assert f.read() == 'aachen_000000_000001\nbremen_000000_000002\n2007_000032\n'
    assert ls.read_split(path) == ids
    assert ls.read_split(path, set(ids) | {'x'}) == ids
    with pytest.raises(ls.SplitError) as error:
        ls.read_split(path, ['aachen_000000_000001', '2007_000032'])
    assert path in str(error.value) and "'bremen_000000_000002'" in str(error.value)
    assert 'line 2' in str(error.value) and error.value.image_id == 'bremen_000000_000002'
    with pytest.raises(ValueError, match='twice'):
        ls.write_split(path, ['a', 'b', 'a'])
    with open(path, 'a') as f:
        f.write('\naachen_000000_000001\n')
    with pytest.raises(ls.SplitError, match='already on line 1'):
        ls.read_split(path)


def test_split_dir_and_u2pl_lines(tmp_path):
    all_ids = [f'aachen_000000_{k:06d}' for k in range(6)]
    folder = str(tmp_path / 'split')
    ls.write_split_dir(folder, all_ids[:2], all_ids[3:])
    assert ls.read_split_dir(folder, all_ids) == (all_ids[:2], all_ids[3:])
    os.remove(osp.join(folder, 'unlabeled.txt'))
    assert ls.read_split_dir(folder, all_ids) == (all_ids[:2], all_ids[2:])
    u2pl = tmp_path / 'u2pl.txt'
    u2pl.write_text('leftImg8bit/train/aachen/aachen_000000_000004_leftImg8bit.png\n'
                    'leftImg8bit/train/aachen/aachen_000000_000001_leftImg8bit.png\n')
    assert ls.split_ids(str(u2pl), all_ids, line_to_id=ls.id_from_u2pl_line) == (
        [all_ids[4], all_ids[1]], [all_ids[0], all_ids[2], all_ids[3], all_ids[5]])


# ----------------------------------------------------------------------------- make_splits CLI
@pytest.fixture(scope='module')
def scenes20(tmp_path_factory):
    from densessl import synthetic_scenes
    root = str(tmp_path_factory.mktemp('scenes20'))
    synthetic_scenes.generate(root, synthetic_scenes.SyntheticScenesConfig(
        num_train=20, num_val=2, num_unlabeled=0, height=32, width=64), progress=False)
    return root


def make_splits(repo_root, *args):
    return subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'make_splits.py'),
                           *args], capture_output=True, text=True, timeout=120, cwd=repo_root)


def listed_ids(root):
    folder = osp.join(root, 'leftImg8bit', 'train')
    return sorted(name[:-len('_leftImg8bit.png')] for city in os.listdir(folder)
                  for name in os.listdir(osp.join(folder, city)))


def test_make_splits_cli_on_synthetic_scenes(scenes20, tmp_path, repo_root):
    out = str(tmp_path / '25pct')
    args = ['--dataset', 'synthetic_scenes', '--root', scenes20, '--labelled-fraction', '0.25',
            '--seed', '1', '--out', out]
    proc = make_splits(repo_root, *args)
    assert proc.returncode == 0, proc.stderr
    ids = listed_ids(scenes20)
    labelled = open(osp.join(out, 'labeled.txt')).read().split()
    unlabelled = open(osp.join(out, 'unlabeled.txt')).read().split()
    assert len(labelled) == 5 and len(unlabelled) == 15
    assert sorted(labelled + unlabelled) == ids and labelled == sorted(labelled)
    assert make_splits(repo_root, *args).returncode == 0  # same split again: fine
    assert open(osp.join(out, 'labeled.txt')).read().split() == labelled
    other = make_splits(repo_root, *args[:-3], '2', '--out', out)  # another seed
    assert other.returncode != 0 and '--force' in other.stderr  # kept without --force
    assert open(osp.join(out, 'labeled.txt')).read().split() == labelled
    assert make_splits(repo_root, *args[:-3], '2', '--out', out, '--force').returncode == 0
    assert open(osp.join(out, 'labeled.txt')).read().split() != labelled
    balanced = str(tmp_path / 'balanced')
    proc = make_splits(repo_root, '--dataset', 'synthetic_scenes', '--root', scenes20,
                       '--labelled-count', '4', '--class-balanced', '--min-classes', '1',
                       '--out', balanced)
    assert proc.returncode == 0, proc.stderr
    assert len(open(osp.join(balanced, 'labeled.txt')).read().split()) == 4
    missing = make_splits(repo_root, '--ids', osp.join(out, 'unlabeled.txt'),
                          '--labelled-pool', osp.join(out, 'labeled.txt'),
                          '--labelled-count', '1', '--out', str(tmp_path / 'bad'))
    first_pool_id = open(osp.join(out, 'labeled.txt')).read().split()[0]
    assert missing.returncode != 0 and f"'{first_pool_id}'" in missing.stderr
