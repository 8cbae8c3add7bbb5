# Aggregation of every run and sweep, then every table and figure of targetcodec/report/outputs.py
# (Tables 3-6, Figures 2-9): one rule per entry, made by the two loops below, each flagged for
# `snakemake --report report.html` with its caption workflow/report/<name>.rst.


rule aggregate:
    input:
        runs=all_run_files(),
        selected=all_final_selected_files(),
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


for output_entry in REPORT_OUTPUTS:

    rule:
        name:
            output_entry.name
        input:
            report_source(output_entry),
        output:
            [
                (
                    report(
                        path,
                        caption=f"../report/{output_entry.name}.rst",
                        category=output_entry.kind.title() + "s",
                        labels={output_entry.kind: output_entry.name},
                    )
                    if path.endswith(IN_REPORT[output_entry.kind])
                    else path
                )
                for path in output_entry.files(RESULTS)
            ],
        log:
            f"{RESULTS}/logs/{output_entry.kind}s/{output_entry.name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{output_entry.kind}s/{output_entry.name}.tsv"
        priority: PRIORITY["report" if output_entry.source else "training"]
        conda:
            "../../envs/workflow.yaml"
        params:
            **report_settings(output_entry),
            name=output_entry.name,
        script:
            "../scripts/report_output.py"
