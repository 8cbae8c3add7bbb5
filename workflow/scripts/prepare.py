"""Rule prepare: load one dataset from its source and write its train/val/test arrays."""

from targetcodec.joblog import job_log
from targetcodec.data.prepare import prepare_dataset

with job_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    key = snakemake.wildcards.dataset  # noqa: F821
    spec = snakemake.config["datasets"][key]  # noqa: F821
    log(f"preparing {key} from source {spec['source']!r}")
    prepared = prepare_dataset(key, spec, snakemake.config["split"], snakemake.config["data_cache"],  # noqa: F821
                               snakemake.output.data, snakemake.output.summary, log)  # noqa: F821
    summary = prepared.summary
    rows = summary["rows"]
    log(f"{key}: {rows['train']}/{rows['val']}/{rows['test']} rows, features {summary['feature_shape']}, "
        f"target dimension {summary['target_dimension']}")
    if "table1" in summary:
        t = summary["table1"]
        log(f"{key}: matches the paper's Table 1" if t["matches"] else
            f"{key}: differs from the paper's Table 1: {'; '.join(t['differences'])}" + (f" ({t['note']})" if t["note"] else ""))
