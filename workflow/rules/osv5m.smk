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

if OSV_KEYS:

    rule osv5m_prepare:
        input:
            osv5m_inputs(),
        output:
            [f"{OSV_CACHE}/{name}" for name in CACHE_FILES],
        log:
            f"{RESULTS}/logs/prepare/osv5m.log",
        benchmark:
            f"{RESULTS}/benchmarks/prepare/osv5m.tsv"
        conda:
            "../../envs/workflow.yaml"
        params:
            root=osv5m_root(),
            embeddings=OSV_EMBEDDINGS,
            validation=OSV_PLAN.validation,
            validation_seed=OSV_PLAN.validation_seed,
            max_bad_fraction=OSV_PLAN.max_bad_fraction,
            cache=OSV_CACHE,
        script:
            "../scripts/osv5m_prepare.py"

    # One rule per pack (or per seed with DDP), named osv5m_train, or osv5m_train_0, osv5m_train_1, ... when
    # there are several: names that profiles/osv5m can list without knowing the seeds.
    for osv_index, osv_pack in enumerate(OSV_PACKS):
        osv_pack_name = pack_name(osv_pack)

        rule:
            name:
                "osv5m_train" if len(OSV_PACKS) == 1 else f"osv5m_train_{osv_index}"
            input:
                [f"{OSV_CACHE}/{name}" for name in CACHE_FILES],
            output:
                runs=[f"{RESULTS}/osv5m/runs/{{configuration}}/seed{seed}.json" for seed in osv_pack],
                predictions=[f"{RESULTS}/osv5m/predictions/{{configuration}}/seed{seed}.npz" for seed in osv_pack],
            log:
                f"{RESULTS}/logs/train/osv5m/{{configuration}}/{osv_pack_name}.log",
            benchmark:
                f"{RESULTS}/benchmarks/train/osv5m/{{configuration}}/{osv_pack_name}.tsv"
            conda:
                "../../envs/train.yaml"
            threads: OSV_PLAN.threads * OSV_PLAN.processes
            resources:
                **OSV_PLAN.training_resources,
            params:
                job=lambda wc, output, threads, pack=osv_pack, name=osv_pack_name: shlex.quote(
                    json.dumps(
                        OSV_PLAN.job(
                            wc.configuration,
                            pack,
                            cache=OSV_CACHE,
                            outputs=list(output.runs),
                            predictions=list(output.predictions),
                            checkpoint=f"{RESULTS}/checkpoints/osv5m/{wc.configuration}/{name}.ckpt",
                            log=f"{RESULTS}/logs/train/osv5m/{wc.configuration}/{name}.log",
                        )
                    )
                ),
                # the job's GPUs from the local pool (profiles/local-gpu), claimed before torchrun starts
                # its processes; under SLURM, or without GPUs, it claims nothing
                claim=lambda wc, resources: (
                    f"{shlex.quote(sys.executable)} -m targetcodec.train.devices {resources.get('gpu', 0)} --"
                ),
                launcher=(
                    f"{shlex.quote(sys.executable)} -m torch.distributed.run --standalone --nproc_per_node {OSV_PLAN.processes}"
                    if OSV_PLAN.ddp
                    else shlex.quote(sys.executable)
                ),
            shell:
                "OMP_NUM_THREADS={OSV_PLAN.threads} {params.claim} {params.launcher} -m targetcodec.train.osv5m {params.job}"

    if OSV_IMAGES:

        rule osv5m_embed:
            # StreetCLIP CLS embeddings of images/<split>/NN.zip (config key osv5m.embed.images), resumable per zip
            input:
                lambda wc: sorted(str(p) for p in (Path(OSV_IMAGES) / wc.split).glob("*.zip")),
            output:
                f"{OSV_EMBEDDINGS}/{{split}}.done",
            log:
                f"{RESULTS}/logs/osv5m_embed/{{split}}.log",
            benchmark:
                f"{RESULTS}/benchmarks/osv5m_embed/{{split}}.tsv"
            wildcard_constraints:
                split="train|test|val",
            conda:
                "../../envs/train.yaml"
            threads: OSV_PLAN.threads
            resources:
                **OSV_PLAN.embed["resources"],
            params:
                images=OSV_IMAGES,
                model=OSV_PLAN.embed["model"],
                batch_size=OSV_PLAN.embed["batch_size"],
                device=OSV_PLAN.device,
                embeddings=OSV_EMBEDDINGS,
            script:
                "../scripts/osv5m_embed.py"

    rule osv5m_report:
        input:
            runs=expand(
                f"{RESULTS}/osv5m/runs/{{configuration}}/seed{{seed}}.json", configuration=OSV_LABELS, seed=OSV_SEEDS
            ),
            predictions=expand(
                f"{RESULTS}/osv5m/predictions/{{configuration}}/seed{{seed}}.npz",
                configuration=OSV_LABELS,
                seed=OSV_SEEDS,
            ),
        output:
            table2=[
                report(p, caption="../report/table2_osv5m.rst", category="Tables") if p.endswith(".csv") else p
                for p in expand(f"{RESULTS}/tables/table2_osv5m.{{ext}}", ext=EXTENSIONS["table"])
            ],
            geo=[
                report(p, caption="../report/osv5m_geolocation.rst", category="Tables") if p.endswith(".csv") else p
                for p in expand(f"{RESULTS}/tables/osv5m_geolocation.{{ext}}", ext=EXTENSIONS["table"])
            ],
            cdf=[
                report(p, caption="../report/osv5m_error_cdf.rst", category="Figures") if p.endswith(".png") else p
                for p in expand(f"{RESULTS}/figures/osv5m_error_cdf.{{ext}}", ext=EXTENSIONS["figure"])
            ],
            world=[
                report(p, caption="../report/osv5m_world_errors.rst", category="Figures") if p.endswith(".png") else p
                for p in expand(f"{RESULTS}/figures/osv5m_world_errors.{{ext}}", ext=EXTENSIONS["figure"])
            ],
        log:
            f"{RESULTS}/logs/osv5m_report.log",
        benchmark:
            f"{RESULTS}/benchmarks/osv5m_report.tsv"
        conda:
            "../../envs/workflow.yaml"
        params:
            labels=OSV_LABELS,
            seeds=OSV_SEEDS,
            reference="least_squares",
        script:
            "../scripts/osv5m_report.py"
