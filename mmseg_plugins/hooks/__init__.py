from mmseg_plugins.hooks.results_table_hook import ResultsTableHook  # noqa: F401
from mmseg_plugins.hooks.run_manifest_hook import RunManifestHook  # noqa: F401
