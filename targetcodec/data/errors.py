"""The error every data step raises for bad or missing data: its message names the dataset, the
config key or the file."""


class DataSourceError(RuntimeError):
    """A dataset cannot be loaded; the message names the dataset, its source and what to do."""
