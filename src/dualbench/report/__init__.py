"""The report stage: the metrics tables in, one self-contained HTML document out."""
