"""The benchmark of the paper around the library: data sources and preparation, the translation of
the workflow config, run records, tables and figures. Used by workflow/scripts/."""
