"""Rule prepare: load one dataset from its source and write its train/val/test arrays."""

from targetcodec.data.prepare import prepare_dataset
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:
    key = snakemake.wildcards.dataset
    spec = snakemake.params.spec
    log(f"preparing {key} from source {spec['source']!r}")
    prepared = prepare_dataset(
        key,
        spec,
        snakemake.params.split,
        snakemake.params.cache_dir,
        snakemake.output.data,
        snakemake.output.summary,
        log,
    )
    summary = prepared.summary
    rows = summary["rows"]
    log(
        f"{key}: {rows['train']}/{rows['val']}/{rows['test']} rows, features {summary['feature_shape']}, "
        f"target dimension {summary['target_dimension']}"
    )
    if "table1" in summary:
        t = summary["table1"]
        if t["matches"]:
            log(f"{key}: matches the paper's Table 1")
        else:
            note = f" ({t['note']})" if t["note"] else ""
            log(f"{key}: differs from the paper's Table 1: {'; '.join(t['differences'])}{note}")
