# OpenStreetView-5M (section 4 "Larger-scale Experiment", Table 1's OSV5M column, Table 2, Appendix C).
# Active only when a dataset with source osv5m is in the run:
#
#   snakemake --cores all --config 'run_datasets=[osv5m]' osv5m_dir=/path/to/osv5m
#   snakemake --profile profiles/osv5m --config 'run_datasets=[osv5m]' osv5m_dir=/path/to/osv5m
#
# osv5m_prepare streams the embeddings into a memory-mapped cache (results/prepared/osv5m/), osv5m_train
# trains the head (a pack of seeds per job, or one seed per job over ddp_processes processes with
# torchrun), osv5m_report writes Table 2, the geolocation table and figures. osv5m_embed computes
# StreetCLIP embeddings for users who have images only (targets: results/osv5m/embeddings/...).

import json
import shlex
import sys

from targetcodec.data.sources.osv5m import CACHE_FILES
from targetcodec.train.settings import Configuration

OSV = config["osv5m"]
OSV_KEYS = [key for key in (config["run_datasets"] or [k for k, s in config["datasets"].items() if s.get("enabled", True)])
            if config["datasets"][key].get("source") == "osv5m"]
if len(OSV_KEYS) > 1:
    raise WorkflowError(f"Invalid configuration: config key 'run_datasets': only one osv5m dataset per run ({', '.join(OSV_KEYS)})")
OSV_SEEDS = list(range(OSV["seeds"])) if isinstance(OSV["seeds"], int) else list(OSV["seeds"])
OSV_LABELS = [c.label for c in configurations(OSV["methods"], [OSV["k"]])]
OSV_CACHE = f"{RESULTS}/prepared/osv5m"
if OSV["parallel"] == "ddp":
    OSV_PACKS = [[seed] for seed in OSV_SEEDS]
else:
    OSV_PACKS = seed_packs(OSV_SEEDS, OSV["pack_size"])


def osv5m_root():
    key = OSV_KEYS[0]
    root = config.get("osv5m_dir") or config["datasets"][key].get("path")
    if not root:
        raise WorkflowError(f"Invalid configuration: dataset {key!r} needs its data folder: config key 'osv5m_dir' "
                            f"(--config osv5m_dir=/path) or 'datasets.{key}.path'")
    return root


OSV_IMAGES = OSV["embed"].get("images")
OSV_EMBEDDINGS = f"{RESULTS}/osv5m/embeddings" if OSV_IMAGES else OSV["embeddings"]


def osv5m_inputs():
    from targetcodec.data.sources.osv5m import input_files
    from targetcodec.data.sources import DataSourceError

    try:
        files = [str(p) for p in input_files(osv5m_root())]
    except DataSourceError as e:
        raise WorkflowError(str(e)) from None
    if OSV_IMAGES:  # embeddings computed by osv5m_embed from the images
        files += [f"{OSV_EMBEDDINGS}/{split}.done" for split in ("train", "test")]
    return files


def osv5m_outputs():
    if not OSV_KEYS:
        return []
    return (
        expand(f"{RESULTS}/tables/{{t}}.{{ext}}", t=["table2_osv5m", "osv5m_geolocation"], ext=TABLE_EXTENSIONS)
        + expand(f"{RESULTS}/figures/{{f}}.{{ext}}", f=["osv5m_error_cdf", "osv5m_world_errors"], ext=FIGURE_EXTENSIONS)
        + [f"{OSV_CACHE}/summary.json"]
    )


def osv5m_job_settings():
    from dataclasses import asdict
    from targetcodec.train.osv5m import OSVSettings

    return asdict(OSVSettings.from_config(config))


if OSV_KEYS:

    rule osv5m_prepare:
        input:
            osv5m_inputs(),
        output:
            [f"{OSV_CACHE}/{name}" for name in CACHE_FILES],
        params:
            root=osv5m_root(),
            embeddings=OSV_EMBEDDINGS,
            validation=OSV["validation"],
            validation_seed=OSV["validation_seed"],
        log:
            f"{RESULTS}/logs/prepare/osv5m.log",
        benchmark:
            f"{RESULTS}/benchmarks/prepare/osv5m.tsv"
        run:
            from targetcodec.data.sources.osv5m import prepare
            from targetcodec.joblog import job_log

            with job_log(log[0]) as log_line:
                prepare(params.root, OSV_CACHE, embeddings=params.embeddings, validation=params.validation,
                        validation_seed=params.validation_seed, log=log_line)

    # One rule per pack (or per seed with DDP), named osv5m_train, or osv5m_train_0, osv5m_train_1, ... when
    # there are several: names that profiles/osv5m can list without knowing the seeds.
    for osv_index, osv_pack in enumerate(OSV_PACKS):
        osv_pack_name = f"seeds{osv_pack[0]}-{osv_pack[-1]}" if len(osv_pack) > 1 else f"seed{osv_pack[0]}"

        rule:
            name:
                "osv5m_train" if len(OSV_PACKS) == 1 else f"osv5m_train_{osv_index}"
            input:
                [f"{OSV_CACHE}/{name}" for name in CACHE_FILES],
            output:
                runs=[f"{RESULTS}/osv5m/runs/{{config}}/seed{seed}.json" for seed in osv_pack],
                predictions=[f"{RESULTS}/osv5m/predictions/{{config}}/seed{seed}.npz" for seed in osv_pack],
            params:
                job=lambda wc, output, threads, pack=osv_pack, name=osv_pack_name: shlex.quote(json.dumps({
                    "cache": OSV_CACHE, "label": wc.config, "seeds": pack, "settings": osv5m_job_settings(),
                    "outputs": list(output.runs), "predictions": list(output.predictions),
                    "checkpoint": f"{RESULTS}/checkpoints/osv5m/{wc.config}/{name}.ckpt",
                    "log": f"{RESULTS}/logs/train/osv5m/{wc.config}/{name}.log", "device": config["device"],
                    "threads": OSV["threads"],
                })),
                launcher=(f"{shlex.quote(sys.executable)} -m torch.distributed.run --standalone --nproc_per_node {OSV['ddp_processes']}"
                          if OSV["parallel"] == "ddp" else shlex.quote(sys.executable)),
            log:
                f"{RESULTS}/logs/train/osv5m/{{config}}/{osv_pack_name}.log",
            benchmark:
                f"{RESULTS}/benchmarks/train/osv5m/{{config}}/{osv_pack_name}.tsv"
            threads: OSV["threads"] * (OSV["ddp_processes"] if OSV["parallel"] == "ddp" else 1)
            resources:
                **(OSV["training_resources"] | ({"gpu": OSV["ddp_processes"]} if OSV["parallel"] == "ddp" and OSV["training_resources"].get("gpu", 1) else {})),
            shell:
                "OMP_NUM_THREADS={OSV[threads]} {params.launcher} -m targetcodec.train.osv5m {params.job}"

    if OSV_IMAGES:

        rule osv5m_embed:
            # StreetCLIP CLS embeddings of images/<split>/NN.zip (config key osv5m.embed.images), resumable per zip
            input:
                lambda wc: sorted(str(p) for p in (Path(OSV_IMAGES) / wc.split).glob("*.zip")),
            output:
                f"{OSV_EMBEDDINGS}/{{split}}.done",
            wildcard_constraints:
                split="train|test|val",
            params:
                images=OSV_IMAGES,
                model=OSV["embed"]["model"],
                batch_size=OSV["embed"]["batch_size"],
                device=config["device"],
            log:
                f"{RESULTS}/logs/osv5m_embed/{{split}}.log",
            benchmark:
                f"{RESULTS}/benchmarks/osv5m_embed/{{split}}.tsv"
            threads: OSV["threads"]
            resources:
                **OSV["embed"]["resources"],
            run:
                from targetcodec.data.embed import embed_split
                from targetcodec.io import atomic_write_text
                from targetcodec.joblog import job_log, set_threads

                with job_log(log[0]) as log_line:
                    set_threads(threads)
                    n = embed_split(params.images, wildcards.split, OSV_EMBEDDINGS, params.model, params.batch_size,
                                    params.device, log_line)
                    atomic_write_text(output[0], f"{n}\n")

    rule osv5m_report:
        input:
            runs=expand(f"{RESULTS}/osv5m/runs/{{config}}/seed{{seed}}.json", config=OSV_LABELS, seed=OSV_SEEDS),
            predictions=expand(f"{RESULTS}/osv5m/predictions/{{config}}/seed{{seed}}.npz", config=OSV_LABELS, seed=OSV_SEEDS),
        output:
            table2=[report(p, caption="../report/table2_osv5m.rst", category="Tables") if p.endswith(".csv") else p
                    for p in expand(f"{RESULTS}/tables/table2_osv5m.{{ext}}", ext=TABLE_EXTENSIONS)],
            geo=[report(p, caption="../report/osv5m_geolocation.rst", category="Tables") if p.endswith(".csv") else p
                 for p in expand(f"{RESULTS}/tables/osv5m_geolocation.{{ext}}", ext=TABLE_EXTENSIONS)],
            cdf=[report(p, caption="../report/osv5m_error_cdf.rst", category="Figures") if p.endswith(".png") else p
                 for p in expand(f"{RESULTS}/figures/osv5m_error_cdf.{{ext}}", ext=FIGURE_EXTENSIONS)],
            world=[report(p, caption="../report/osv5m_world_errors.rst", category="Figures") if p.endswith(".png") else p
                   for p in expand(f"{RESULTS}/figures/osv5m_world_errors.{{ext}}", ext=FIGURE_EXTENSIONS)],
        params:
            labels=OSV_LABELS,
            seeds=OSV_SEEDS,
            reference="least_squares",
        log:
            f"{RESULTS}/logs/osv5m_report.log",
        benchmark:
            f"{RESULTS}/benchmarks/osv5m_report.tsv"
        run:
            from targetcodec.joblog import job_log
            from targetcodec.report.osv5m import write_report

            with job_log(log[0]) as log_line:
                n = len(params.seeds)
                predictions = {lab: list(input.predictions)[i * n : (i + 1) * n] for i, lab in enumerate(params.labels)}
                out = {f"table2_{Path(p).suffix[1:]}": p for p in output.table2}
                out |= {f"geo_{Path(p).suffix[1:]}": p for p in output.geo}
                out |= {f"cdf_{Path(p).suffix[1:]}": p for p in output.cdf}
                out |= {f"world_{Path(p).suffix[1:]}": p for p in output.world}
                write_report(list(input.runs), predictions, out, params.reference)
                log_line(f"Table 2 and geolocation metrics of {len(input.runs)} runs written")
