"""The two YAML files of a ViRB run, in the original's formats (a user's files work
unchanged), checked before anything runs: an unknown key, task, optimizer or scheduler key
is one error naming the file and the key.

Experiment list (``configs/virb/experiment_lists/*.yaml``): ``{name: weights}``::

    SWAV_800: pretrained_weights/SWAV_800.pt      # a file: any format of
                                                  # tools/convert_checkpoint.py or ViRB's own
    # extensions (a mapping instead of a path):
    Random_R18: {weights: null, arch: resnet18, seed: 0}     # random init
    SlotCon_R18: {weights: work_dirs/demo/slotcon_resnet18_mmseg.pth, arch: resnet18}
    MyNet: {factory: 'my_pkg.encoders:build', options: {width: 2}}   # custom encoder

Relative weight paths are tried relative to the working directory, then to the list file.

ViRB config (``configs/virb/virb_configs/*.yaml``): ``{TaskKey: task spec}``::

    Imagenet:
      task: Imagenet                   # a registered task (virb.tasks)
      training_configs: {name: {optimizer, lr, [momentum], [weight_decay], [scheduler]}}
      num_epochs: 100
      batch_size: 32
      test_batch_size: 32              # optional (default batch_size)
      pre_encode: true                 # optional (default: true for image-level tasks,
                                       # false for pixelwise ones, as the original's files
                                       # set them; true on a pixelwise task encodes one
                                       # augmented draw per num_dataset_repeats)
      num_dataset_repeats: 1           # optional
      task_head_weights_path: "out/%s/Imagenet*/model_head.pt"   # optional (%s: experiment)
      # extensions:
      data_root: /data/imagenet        # this task's folder (default <--data-root>/<folder>)
      options: {image_size: [224, 224]}  # the task's options (virb.tasks)
      bug_compat: [scheduler_never_steps]  # reproduce the original's constant LR
      # (cityscapes_void_class: the original's Cityscapes, void a trained class; that
      #  task only)
"""
import os.path as osp
from dataclasses import dataclass, field

import yaml

from virb.errors import VirbError, reject_unknown_keys
from virb.grid import BUG_SCHEDULER, parse_training_config
from virb.tasks.pixel_semantic import BUG_CITYSCAPES_VOID

TASK_KEYS = ('task', 'training_configs', 'num_epochs', 'batch_size', 'test_batch_size',
             'pre_encode', 'num_dataset_repeats', 'task_head_weights_path', 'data_root',
             'options', 'bug_compat')
# every bug_compat switch; a task-specific one (a task's ``bug_switches``) is refused in
# the entry of another task, and applies only to the tasks that take it when given on the
# command line (--bug-compat)
BUG_COMPAT = (BUG_SCHEDULER, BUG_CITYSCAPES_VOID)
TASK_SPECIFIC_BUG_COMPAT = (BUG_CITYSCAPES_VOID,)
ENCODER_KEYS = ('weights', 'arch', 'seed', 'factory', 'options')


@dataclass
class EncoderSpec:
    """One experiment: a name and how to build its encoder."""
    name: str
    weights: str = None
    arch: str = None
    seed: int = 0
    factory: str = None
    options: dict = field(default_factory=dict)

    def as_dict(self):
        return {'name': self.name, 'weights': self.weights, 'arch': self.arch,
                'seed': self.seed, 'factory': self.factory, 'options': dict(self.options)}


@dataclass
class TaskSpec:
    """One task entry of a ViRB config, validated."""
    key: str
    task: str
    training_configs: dict
    num_epochs: int
    batch_size: int
    test_batch_size: int
    pre_encode: bool = True
    num_dataset_repeats: int = 1
    task_head_weights_path: str = None
    data_root: str = None
    options: dict = field(default_factory=dict)
    bug_compat: tuple = ()

    def as_dict(self):
        return {'key': self.key, 'task': self.task,
                'training_configs': {k: v.as_dict() for k, v in self.training_configs.items()},
                'num_epochs': self.num_epochs, 'batch_size': self.batch_size,
                'test_batch_size': self.test_batch_size, 'pre_encode': self.pre_encode,
                'num_dataset_repeats': self.num_dataset_repeats,
                'task_head_weights_path': self.task_head_weights_path,
                'data_root': self.data_root, 'options': dict(self.options),
                'bug_compat': list(self.bug_compat)}


def read_yaml(path, what):
    if not osp.isfile(path):
        raise VirbError(f'{what} not found: {path}')
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise VirbError(f'{path}: not valid YAML ({e})') from e
    if not isinstance(data, dict) or not data:
        raise VirbError(f'{path}: a {what} is a non-empty mapping')
    return data


def _resolve(path, list_file):
    if path is None or osp.isabs(path) or osp.exists(path):
        return path
    beside = osp.join(osp.dirname(osp.abspath(list_file)), path)
    return beside if osp.exists(beside) else path


def parse_encoder(name, value, where, list_file=None):
    if value is None or isinstance(value, str):
        value = {'weights': value}
    if not isinstance(value, dict):
        raise VirbError(f'{where}: a weight file path or a mapping with '
                        f'{", ".join(ENCODER_KEYS)}')
    reject_unknown_keys(value, ENCODER_KEYS, where, 'an experiment')
    weights = value.get('weights')
    if weights is not None:
        weights = _resolve(str(weights), list_file) if list_file else str(weights)
        if not osp.isfile(weights):
            raise VirbError(f'{where}: weight file not found: {weights}')
    if weights is None and not value.get('factory') and not value.get('arch'):
        raise VirbError(f'{where}: no weights: give a weight file, or arch: (e.g. resnet18) '
                        f'for a random init')
    return EncoderSpec(name, weights, value.get('arch'), int(value.get('seed', 0)),
                       value.get('factory'), dict(value.get('options') or {}))


def load_experiment_list(path, suffix=''):
    """``{name: weights}`` -> [EncoderSpec] (names with ``suffix`` appended)."""
    data = read_yaml(path, 'experiment list')
    return [parse_encoder(f'{name}{suffix}', value, f'{path}: {name}', path)
            for name, value in data.items()]


def _int(raw, key, where, minimum=1):
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise VirbError(f'{where}.{key}: an integer >= {minimum} (found {value!r})')
    return value


def parse_task_spec(key, raw, path):
    from virb.tasks import get_task_class
    where = f'{path}: {key}'
    if not isinstance(raw, dict):
        raise VirbError(f'{where}: a task entry is a mapping with {", ".join(TASK_KEYS[:4])}')
    reject_unknown_keys(raw, TASK_KEYS, where, 'a task entry')
    for required in ('task', 'training_configs', 'num_epochs', 'batch_size'):
        if required not in raw:
            raise VirbError(f'{where}: missing {required!r}')
    task_class = get_task_class(raw['task'], f'{where}.task')
    configs = raw['training_configs']
    if not isinstance(configs, dict) or not configs:
        raise VirbError(f'{where}.training_configs: a non-empty mapping of config name -> '
                        f'{{optimizer, lr, ...}}')
    parsed = {name: parse_training_config(str(name), c, f'{where}.training_configs.{name}')
              for name, c in configs.items()}
    bug_compat = raw.get('bug_compat') or []
    if isinstance(bug_compat, str):
        bug_compat = [bug_compat]
    for item in bug_compat:
        if item not in BUG_COMPAT:
            raise VirbError(f'{where}.bug_compat: unknown switch {item!r}; one of '
                            f'{", ".join(BUG_COMPAT)}')
        if item in TASK_SPECIFIC_BUG_COMPAT and item not in task_class.bug_switches:
            takes = [name for name, cls in sorted(_task_classes().items())
                     if item in cls.bug_switches]
            raise VirbError(f'{where}.bug_compat: {item!r} applies to task '
                            f'{", ".join(takes)} only, not {raw["task"]}')
    options = raw.get('options') or {}
    if not isinstance(options, dict):
        raise VirbError(f'{where}.options: a mapping of task options')
    # checks the option names and the augmentation's options (reads no data)
    task_class(None, options, where=where).train_augmentation()
    batch = _int(raw, 'batch_size', where)
    return TaskSpec(key=str(key), task=raw['task'], training_configs=parsed,
                    num_epochs=_int(raw, 'num_epochs', where, minimum=0), batch_size=batch,
                    test_batch_size=_int(raw, 'test_batch_size', where) if 'test_batch_size'
                    in raw else batch,
                    pre_encode=bool(raw.get('pre_encode', task_class.level == 'image')),
                    num_dataset_repeats=_int(raw, 'num_dataset_repeats', where)
                    if 'num_dataset_repeats' in raw else 1,
                    task_head_weights_path=raw.get('task_head_weights_path'),
                    data_root=raw.get('data_root'), options=dict(options),
                    bug_compat=tuple(bug_compat))


def _task_classes():
    from virb.tasks import TASKS
    return TASKS


def load_virb_configs(path):
    """``{TaskKey: spec}`` -> [TaskSpec], every key checked."""
    data = read_yaml(path, 'ViRB config')
    return [parse_task_spec(key, raw, path) for key, raw in data.items()]
