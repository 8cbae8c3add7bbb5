"""Training stages of the workflow (workflow/rules/codec.smk, sweep.smk, train.smk): the config
turned into typed settings, the jobs that train packs, sweep selection and the devices a job uses."""
