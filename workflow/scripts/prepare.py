"""Rule prepare: load one dataset from its source and write its train/val/test arrays."""

from targetcodec.benchmark.jobs import job_log
from targetcodec.benchmark.prepare import prepare, save_prepared
from targetcodec.benchmark.sources import load_dataset

with job_log(snakemake.log[0]) as log:  # noqa: F821 (snakemake is injected)
    key = snakemake.wildcards.dataset  # noqa: F821
    spec = snakemake.config["datasets"][key]  # noqa: F821
    log(f"preparing {key} from source {spec['source']!r}")
    raw = load_dataset(key, spec, snakemake.config["data_cache"])  # noqa: F821
    prepared = prepare(raw, spec, snakemake.config["split"], key)  # noqa: F821
    save_prepared(prepared, snakemake.output.data, snakemake.output.summary)  # noqa: F821
    rows = prepared.summary["rows"]
    log(f"{key}: {rows['train']}/{rows['val']}/{rows['test']} rows, features {prepared.summary['feature_shape']}, "
        f"target dimension {prepared.summary['target_dimension']}")
