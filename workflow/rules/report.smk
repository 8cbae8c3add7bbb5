# Aggregation of every run and sweep, then Tables 3-6 and Figures 2-9. Every table and figure is
# flagged for `snakemake --report report.html` with a caption from workflow/report/.


def in_report(path, category):
    """Flag an output for `snakemake --report` with its caption (workflow/report/<name>.rst)."""
    name = Path(path).stem
    return report(path, caption=f"../report/{name}.rst", category=category, labels={category.lower()[:-1]: name})


def table_outputs(names):
    """Tables as .md, .csv and .tex; the CSV goes into the report."""
    return [in_report(p, "Tables") if p.endswith(".csv") else p for p in table_files(names)]


def figure_outputs(names):
    """Figures as .png and .pdf; the PNG goes into the report."""
    return [in_report(p, "Figures") if p.endswith(".png") else p for p in figure_files(names)]


def report_params():
    return {"codes": {d: dataset_code(d) for d in datasets()}, "datasets": datasets()}


rule aggregate:
    input:
        all_run_files(),
    output:
        f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/aggregate.py"


rule aggregate_sweeps:
    input:
        all_sweep_files(),
    output:
        f"{RESULTS}/sweeps.parquet",
    log:
        f"{RESULTS}/logs/aggregate_sweeps.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_sweeps.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/aggregate_sweeps.py"


rule tables:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        table_outputs(TABLES),
    params:
        **report_params(),
        configurations=[c.label for c in CONFIGURATIONS],
        alpha=config["significance"]["alpha"],
        reference=config["significance"]["reference"],
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/tables.py"


rule table6:
    input:
        f"{RESULTS}/sweeps.parquet",
    output:
        table_outputs(["table6_lambda_kl"]),
    params:
        **report_params(),
    log:
        f"{RESULTS}/logs/table6.log",
    benchmark:
        f"{RESULTS}/benchmarks/table6.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/table6.py"


rule figures:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        figure_outputs(FIGURES),
    params:
        **report_params(),
        configurations=[c.label for c in CONFIGURATIONS],
        k=config["figures"]["k"],
    log:
        f"{RESULTS}/logs/figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/figures.py"


rule figure4_centre:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        figure_outputs(["figure4_centre_k"]),
    params:
        methods=SWEEPS["k"]["methods"],
    log:
        f"{RESULTS}/logs/figure4_centre.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure4_centre.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/figure4_centre.py"


rule figure4_bottom:
    input:
        f"{RESULTS}/sweeps.parquet",
    output:
        figure_outputs(["figure4_bottom_lambda_kl"]),
    params:
        **report_params(),
        dataset=SWEEPS["lambda_kl"]["figure_dataset"],
    log:
        f"{RESULTS}/logs/figure4_bottom.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure4_bottom.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/figure4_bottom.py"


rule encoder_figures:
    output:
        figure_outputs(ENCODER_FIGURES),
    params:
        seed=config["split"]["seed"],
        lambda_sigma=config["codec"]["soft_binning_lambda_sigma"],
    log:
        f"{RESULTS}/logs/encoder_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/encoder_figures.tsv"
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/encoder_figures.py"
