"""Rule osv5m_embed: StreetCLIP CLS embeddings of one split's images, resumable per zip."""

from targetcodec.data.embed import embed_split
from targetcodec.io import atomic_write_text
from targetcodec.joblog import job_log, set_threads

with job_log(snakemake.log[0]) as log:
    set_threads(snakemake.threads)
    p = snakemake.params
    n = embed_split(p.images, snakemake.wildcards.split, p.embeddings, p.model, p.batch_size, p.device, log)
    atomic_write_text(snakemake.output[0], f"{n}\n")
