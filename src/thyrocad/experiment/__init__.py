"""The paper's experiment: every (model, split) run on the same patient-level splits, then the
table, statistics, figures and report (`run_experiment`)."""
