# Aggregation of every run and sweep, then every table and figure of targetcodec/report/outputs.py
# (Tables 3-6, Figures 2-9): one rule per entry, made by the two loops below, each flagged for
# `snakemake --report report.html` with its caption workflow/report/<name>.rst.


rule aggregate:
    input:
        all_run_files(),
    output:
        f"{RESULTS}/metrics.parquet",
    log:
        f"{RESULTS}/logs/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate.tsv"
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
    script:
        "../scripts/aggregate_sweeps.py"


def report_settings():
    """The params of every table and figure rule (targetcodec.report.outputs.ReportSettings)."""
    settings = method_settings(config)
    return {
        "datasets": datasets(),
        "codes": {d: dataset_code(d) for d in datasets()},
        "configurations": [c.label for c in CONFIGURATIONS],
        "labels": {c.label: c.display(settings) for c in CONFIGURATIONS},
        "k": config["figures"]["k"],
        "alpha": config["significance"]["alpha"],
        "reference": config["significance"]["reference"],
        "k_sweep_methods": SWEEPS["k"]["methods"],
        "lambda_kl_dataset": SWEEPS["lambda_kl"]["figure_dataset"],
        "lambda_sigma": config["codec"]["soft_binning_lambda_sigma"],
        "seed": config["split"]["seed"],
        "method_modules": config["method_modules"],
    }


SOURCE_FILES = {"metrics": f"{RESULTS}/metrics.parquet", "sweeps": f"{RESULTS}/sweeps.parquet", None: []}

for output_entry in REPORT_OUTPUTS:

    rule:
        name:
            output_entry.name
        input:
            SOURCE_FILES[output_entry.source],
        output:
            [
                report(
                    path,
                    caption=f"../report/{output_entry.name}.rst",
                    category=output_entry.kind.title() + "s",
                    labels={output_entry.kind: output_entry.name},
                )
                if path.endswith(IN_REPORT[output_entry.kind])
                else path
                for path in output_entry.files(RESULTS)
            ],
        params:
            name=output_entry.name,
            **report_settings(),
        log:
            f"{RESULTS}/logs/{output_entry.kind}s/{output_entry.name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{output_entry.kind}s/{output_entry.name}.tsv"
        script:
            "../scripts/report_output.py"
