from vissl_plugins.optimizers.larc import LARC, SGDWithLARC  # noqa: F401
