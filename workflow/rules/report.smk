# Aggregation of every run and sweep, then every table and figure of targetcodec/report/outputs.py
# (Tables 3-6, Figures 2-9): one rule per entry, made by the two loops below, each flagged for
# `snakemake --report report.html` with its caption workflow/report/<name>.rst; last, the comparison
# with the paper and its linear-regression reference.

from targetcodec.report.paper import PAPER_NUMBERS


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


# The comparison with the paper (targetcodec/report/paper.py): its Tables 3-6 beside ours, with a
# linear-regression reference fitted on each prepared training split. For the datasets whose code the
# paper reports; for a run without one the table says so in one line.

LINEAR_REGRESSION = f"{RESULTS}/reference/linear_regression.csv"
PAPER_COMPARISON = [f"{RESULTS}/tables/paper_comparison.{ext}" for ext in ("md", "csv")]
# our Table 6 (rule table6_lambda_kl), where the lambda_KL sweep runs
REPORT_OUTPUTS_BY_NAME = {o.name: o for o in REPORT_OUTPUTS}
TABLE6_CSV = (
    [p for p in REPORT_OUTPUTS_BY_NAME["table6_lambda_kl"].files(RESULTS) if p.endswith(".csv")]
    if "table6_lambda_kl" in REPORT_OUTPUTS_BY_NAME
    else []
)

# what rule all asks for (nothing when only the OSV5M stage runs)
PAPER_COMPARISON_OUTPUTS = [LINEAR_REGRESSION] + PAPER_COMPARISON if datasets() else []


rule linear_regression:
    input:
        expand(f"{RESULTS}/prepared/{{dataset}}.npz", dataset=datasets()),
    output:
        report(
            LINEAR_REGRESSION,
            caption="../report/linear_regression.rst",
            category="Tables",
            labels={"table": "linear_regression"},
        ),
    log:
        f"{RESULTS}/logs/reference/linear_regression.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/linear_regression.tsv"
    priority: PRIORITY["report"]
    conda:
        "../../envs/workflow.yaml"
    params:
        datasets=datasets(),
        codes={d: dataset_code(d) for d in datasets()},
    script:
        "../scripts/linear_regression.py"


rule paper_comparison:
    input:
        metrics=f"{RESULTS}/metrics.parquet",
        linear_regression=LINEAR_REGRESSION,
        lambda_kl=TABLE6_CSV,
        paper=str(PAPER_NUMBERS),
    output:
        md=PAPER_COMPARISON[0],
        csv=report(
            PAPER_COMPARISON[1],
            caption="../report/paper_comparison.rst",
            category="Tables",
            labels={"table": "paper_comparison"},
        ),
    log:
        f"{RESULTS}/logs/tables/paper_comparison.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/paper_comparison.tsv"
    priority: PRIORITY["report"]
    conda:
        "../../envs/workflow.yaml"
    params:
        **{
            key: value
            for key, value in report_settings(REPORT_OUTPUTS_BY_NAME["table3_mae"]).items()
            if key in ("datasets", "codes", "configurations", "labels", "alpha", "reference", "method_modules")
        },
    script:
        "../scripts/paper_comparison.py"
