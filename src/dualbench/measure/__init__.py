"""The measure stage: one run of a scenario, one worker process per slot, released together at
a barrier and stopped together, whatever happens written as one run record.

- ``runner``: the parent. Starts the workers, coordinates them, samples telemetry beside them
  (dualbench.telemetry), writes run.json;
- ``worker``: one model on one slot in a fresh interpreter: load, warm up, follow a schedule,
  hand back its timestamps;
- ``closed_loop``: the worker's schedule between ``go`` and ``stop`` (open-loop arrivals and
  lockstep go beside it);
- ``engine``: one timed generate call (a host timestamp per delivered token) and model loading;
- ``protocol``: both ends of the runner <-> worker messages;
- ``lifetime``: stop signals end a run at once; a worker dies with its runner;
- ``progress``: the run's progress lines on stderr.

Measure never imports the analysis or the report: its product is the run record.
"""
