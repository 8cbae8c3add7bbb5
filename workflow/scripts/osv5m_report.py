"""Rule osv5m_report: Table 2, the geolocation metrics, the error CDF and the world map of errors."""

from pathlib import Path

from targetcodec.joblog import job_log
from targetcodec.report.osv5m import write_report

with job_log(snakemake.log[0]) as log:
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    n = len(p.seeds)
    predictions = {label: list(inp.predictions)[i * n : (i + 1) * n] for i, label in enumerate(p.labels)}
    files = {f"table2_{Path(f).suffix[1:]}": f for f in out.table2}
    files |= {f"geo_{Path(f).suffix[1:]}": f for f in out.geo}
    files |= {f"cdf_{Path(f).suffix[1:]}": f for f in out.cdf}
    files |= {f"world_{Path(f).suffix[1:]}": f for f in out.world}
    runs = write_report(list(inp.runs), predictions, files, p.reference)
    failed = runs[runs["failed"]]
    log(
        f"Table 2 and geolocation metrics of {len(inp.runs)} runs written; {len(failed)} failed and left out"
        + "".join(f"\n  FAILED {r.configuration} seed {r.seed}: {r.failure}" for r in failed.itertuples())
    )
