"""The analysis stage: run records in, the tables of results/metrics/ out.

It owns every number the report shows: the report only arranges and formats the files
written here. Modules, one concern each:

- ``columns``: the schema of every table (named column groups -> full lists),
  ``METRICS_FILES`` and ``run_id(spec)``;
- ``definitions``: ``DEFINITIONS``, each metric stated as computed (the report prints it);
- ``metrics``: pure per-request and per-slot metrics from timestamps: request latencies,
  statistics, the co-located window, a slot's figures over it, validity;
- ``series``: pure math on sampled series (integrals, means, counter deltas);
- ``telemetry``: a run's telemetry reduced to the window: utilisation, energy, tokens/J;
- ``runs``: one record -> its run, request, energy and telemetry rows, in a single pass;
- ``layouts``: the models and layouts of the data (names from runs.csv, never a constant);
- ``lockstep``: a lockstep run's turns: overlaps and hand-over times;
- ``scaling``: scaling.csv (the scaling curve over group layouts) and interference.csv (each
  member's slowdowns);
- ``int4``: precisions.csv and int4.csv (INT4 against its dense baseline);
- ``aggregate``: ``aggregate()``, which reads the run.json files and writes every table and
  environment.json.

Import rule: analysis reads the files the measure stage writes, never its code. Outside this
subpackage it imports only ``dualbench.telemetry.sampler.read_csv``,
``dualbench.telemetry.sources.WORKER_CPU_SOURCE``, ``dualbench.config.vocabulary`` and the
``dualbench.models.fidelity`` constants; never ``dualbench.measure`` or ``dualbench.report``.
No module imports another's ``_private`` name.
"""
