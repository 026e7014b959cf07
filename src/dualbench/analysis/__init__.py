"""The analysis stage: run records in, the tables of results/metrics/ out."""
