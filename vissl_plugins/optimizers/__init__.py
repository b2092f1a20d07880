from vissl_plugins.optimizers.larc import LARC, SGDWithLARC  # noqa: F401
from vissl_plugins.optimizers.lars import SlotConLARS  # noqa: F401
