"""The report stage: the metrics tables in, one self-contained HTML document out (DESIGN §8).

It owns the report's figures (seaborn, rendered to PNG and embedded as data URIs), the headline
answers generated from the data, number formatting, and the context of the Jinja2 template
``templates/report.html.j2``. It reads only the documented outputs of the analysis stage
(``dualbench.analysis.columns.METRICS_FILES``) and derives no metric of its own, so the report
cannot disagree with the data or with the definitions it prints. Modules, one concern each:

- ``format``: number and text formatting (``fmt_*``, ``FORMATTERS``, ``DASH``) and the
  NaN-tolerant readers of a cell (``number``, ``is_finite``, ``as_bool``, ``text_or``);
- ``tables``: the metrics tables read back and normalised (column lists, ``read_csv``,
  ``prepare_*``) and the lookups over them (scenario keys, runs by key, problems, labels);
- ``details``: the per-scenario detail tables;
- ``figures``: the palette, ``embedded_figure`` (a matplotlib figure as a PNG data URI, or a
  note) and the figures of the Figures section;
- ``summary``: the headline sentences and the headline tables' rows;
- ``int4``, ``telemetry``: the "16-bit vs INT4" and "Utilisation and energy" sections;
- ``render``: the Jinja2 environment, ``render_report`` (DataFrames -> HTML) and
  ``write_report`` (metrics directory -> HTML file).

Import rule: modules import each other's public names only, in that order (``render`` last;
no cycle). Outside this subpackage the report imports only ``dualbench.analysis.columns`` and
``dualbench.config.vocabulary`` (the slot names, from which the palette, the headline columns
and the layout order are built).
"""
