"""The task registry: a task is one class registered under the name configs use.

    from virb.tasks import Task, register_task

    @register_task('MyTask')
    class MyTask(ImageClassificationTask):      # or Task, or any family base class
        data_subdir = 'my_task'                 # default folder under --data-root
        source = 'where the data set comes from (a URL, a script)'
        def split_items(self, root, split):     # [(image path, class id)]
            ...

The runner looks a task up by name (``get_task``); nothing else needs editing.
"""
from virb.errors import VirbError

TASKS = {}


def register_task(name):
    """Class decorator: register a ``Task`` subclass under ``name`` (sets ``cls.name``)."""
    def register(cls):
        if name in TASKS:
            raise ValueError(f'task {name!r} is already registered ({TASKS[name]})')
        cls.name = name
        TASKS[name] = cls
        return cls
    return register


def get_task_class(name, where='task'):
    """The class registered as ``name``; ``VirbError`` naming ``where`` and the known
    names otherwise."""
    if name not in TASKS:
        raise VirbError(f'{where}: unknown task {name!r}; registered tasks: '
                        f'{", ".join(sorted(TASKS))}')
    return TASKS[name]
