"""Rules table*, figure*: one table or figure of the registry (targetcodec/report/outputs.py)."""

from pathlib import Path

from targetcodec.io import read_parquet
from targetcodec.joblog import job_log
from targetcodec.report.outputs import OUTPUTS, ReportSettings

with job_log(snakemake.log[0]) as log:
    params = dict(snakemake.params.items())
    output = OUTPUTS[params.pop("name")]
    settings = ReportSettings(**params)
    frame = read_parquet(snakemake.input[0]) if snakemake.input else None
    stem = str(Path(snakemake.output[0]).with_suffix(""))
    output.make(frame, stem, settings, log)
    log(f"wrote {', '.join(Path(p).name for p in snakemake.output)}")
