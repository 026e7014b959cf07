"""The models stage: a config source fetched (or a synthetic model built) and converted to
each benchmarked precision, so a run loads exactly the bytes it benchmarks.

- sources.py: a config source -> a checkpoint on disk (a synthetic model built, a local one
  validated, a hub one downloaded), recorded in source.json;
- convert.py: that checkpoint -> one in the benchmarked precision, with conversion.json (its
  bytes, and for INT4 its fidelity);
- fidelity.py: how far the INT4 weights move the model's outputs from its 16-bit source;
- safetensors_file.py: a safetensors reader with plain file reads (no memory map, so no
  mapped pages in a worker's peak memory);
- int4/: the INT4 weight-only format: the artifact (writing and reading it), the kernels that
  multiply by it on each backend, and the loader a worker runs it through.
"""
