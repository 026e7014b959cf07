"""dualbench: benchmark two Llama 3.2 models side by side on Ascend NPUs, CUDA GPUs or the CPU.

One subpackage per pipeline stage, in pipeline order, on a foundation of small modules:

- foundation: ``errors`` (user errors, the one-line exit), ``hardware`` and ``native_dtypes``
  (what the machine has and computes natively), ``model_shapes``, ``workload``,
  ``provenance``, ``job_log``, ``backends/`` (per device kind);
- ``config/``: the vocabulary, validation, and what each rule reads (the cache keys);
- ``models/``: fetch or build a model, convert it to each precision (INT4 included);
- ``telemetry/``: what is sampled beside a run;
- ``measure/``: one run, one worker process per slot;
- ``analysis/``: run records -> the tables of results/metrics/;
- ``report/``: the tables -> one self-contained HTML report;
- ``cli``: the ``dualbench`` command.

A module imports its own stage or earlier ones, never a later one, never another module's
private name (tests/unit/test_layout.py).
"""

__version__ = "0.1.0"
