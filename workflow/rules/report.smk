# Aggregation of every run, then Tables 3-5 and Figures 3-7.


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


rule tables:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        expand(f"{RESULTS}/tables/{{table}}.{{ext}}", table=TABLES, ext=["md", "csv", "tex"]),
    params:
        codes={dataset: dataset_code(dataset) for dataset in datasets()},
        datasets=datasets(),
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables.tsv"
    script:
        "../scripts/tables.py"


rule figures:
    input:
        f"{RESULTS}/metrics.parquet",
    output:
        expand(f"{RESULTS}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["png", "pdf"]),
    params:
        codes={dataset: dataset_code(dataset) for dataset in datasets()},
        k=config["figures"]["k"],
    log:
        f"{RESULTS}/logs/figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures.tsv"
    script:
        "../scripts/figures.py"
