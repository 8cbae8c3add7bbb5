"""Stage 1 of the workflow (workflow/rules/data.smk): data sources, the raw-data cache, downloads,
preparation into train/val/test arrays (section 4, Table 1)."""

from .errors import DataSourceError
from .split import SplitData

__all__ = ["DataSourceError", "SplitData"]
