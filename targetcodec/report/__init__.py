"""The report stage of the workflow (workflow/rules/report.smk): aggregation of every run, Tables
3-6, Figures 2-9 and the significance tests."""
