"""Rule aggregate: every run file -> one tidy parquet table (a row per run), after checking that each
run was trained at the values its sweeps selected."""

from targetcodec.io import write_parquet
from targetcodec.joblog import job_log
from targetcodec.report.aggregate import check_selected, failed_run_lines, load_runs

with job_log(snakemake.log[0]) as log:
    frame = load_runs(snakemake.input.runs)
    check_selected(frame, snakemake.input.selected)
    write_parquet(frame, snakemake.output[0])
    failed = failed_run_lines(frame)
    log(
        f"{len(frame)} runs, {frame['dataset'].nunique()} datasets, {frame['configuration'].nunique()} configurations, "
        f"{len(failed)} failed (left out of every table and figure)" + "".join(f"\n  FAILED {line}" for line in failed)
    )
