"""The experiment protocol: patient-level splits, the run registry, execution of runs."""
