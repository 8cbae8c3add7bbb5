"""Rule osv5m_prepare: stream OSV5M embeddings and coordinates into the memory-mapped cache, skipping
and counting bad samples (summary.json and the log say how many, why and in which shards)."""

from targetcodec.data.sources.osv5m import prepare
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:
    p = snakemake.params
    prepare(
        p.root,
        p.cache,
        embeddings=p.embeddings,
        validation=p.validation,
        validation_seed=p.validation_seed,
        max_bad_fraction=p.max_bad_fraction,
        log=log,
    )
