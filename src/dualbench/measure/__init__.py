"""The measure stage: one run of a scenario, one worker process per slot, released together at
a barrier and stopped together, whatever happens written as one run record.

- ``runner``: the parent. Starts the workers, coordinates them, samples telemetry beside them
  (dualbench.telemetry), writes run.json;
- ``launch``: the worker processes a run's schedule needs, their specs and environments, and
  the runner's handle on each;
- ``worker``: one model on one slot (or, single-thread, every slot's) in a fresh interpreter:
  load, warm up, follow a schedule, hand back its timestamps;
- ``closed_loop``: the worker's schedule between ``go`` and ``stop``; beside it ``open_loop``
  (seeded arrivals) and ``single_thread`` (one process serving several slots in rounds);
- ``lockstep``: the ring of turns that makes co-located workers take their forward passes one
  at a time;
- ``engine``: one timed generate call (a host timestamp per delivered token) and model loading;
- ``protocol``: both ends of the runner <-> worker messages;
- ``lifetime``: stop signals end a run at once; a worker dies with its runner;
- ``exclusivity``: at a measuring job's start, whether a foreign process uses its slots,
  and whether the job measures (``run.exclusivity``);
- ``progress``: the run's progress lines on stderr.

Measure never imports the analysis or the report: its product is the run record.
"""
