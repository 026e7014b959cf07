"""The models stage: a config source fetched (or a synthetic model built) and converted to
each benchmarked precision, so a run loads exactly the bytes it benchmarks."""
