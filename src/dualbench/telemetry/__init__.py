"""Telemetry: what the runner samples beside every run (utilisation, power, energy), in the
parent, never in the measured workers.

- ``sources``: the readable sources per backend (process CPU time, RAPL, npu-smi, NVML);
- ``sampler``: the sampling threads and the telemetry.csv they write;
- ``npusmi``: the npu-smi commands and parsers for what they print;
- ``occupancy``: who uses the cores and GPUs right now (the measuring jobs' exclusivity
  check).

The measure stage drives it; the analysis stage reads the files it writes.
"""
