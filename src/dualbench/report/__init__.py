"""The report stage: the metrics tables in, one self-contained HTML document out (DESIGN §8).

It owns the report's figures (seaborn, rendered to PNG and embedded as data URIs), the headline
answers generated from the data, number formatting, and the context of the Jinja2 template
``templates/report.html.j2``. It reads only the documented outputs of the analysis stage
(``dualbench.analysis.columns.METRICS_FILES``) and derives no metric of its own, so the report
cannot disagree with the data or with the definitions it prints: estimates, their intervals
and verdicts come from answers.csv, where the metrics have one. Modules, one concern each:

- ``format``: number and text formatting (``fmt_*``, ``fmt_estimate`` for an estimate with its
  interval, ``FORMATTERS``, ``DASH``) and the NaN-tolerant readers of a cell (``number``,
  ``is_finite``, ``as_bool``, ``text_or``);
- ``layouts``: the models and layouts of the data (``slot_names``: the sorted unique ``slot``
  values of runs.csv, never a constant; the layout grammar of dualbench.config.vocabulary
  read through ``kind_of``, ``members``, ``sort_layouts``) and their labels;
- ``tables``: the metrics tables read back and normalised (column lists, ``read_csv``,
  ``prepare_*``) and the lookups over them (scenario keys, runs by key, problems, drifted
  blocks, labels);
- ``estimates``: answers.csv by answer and subject, each figure with its interval and verdict;
- ``details``: the per-scenario detail tables and the Blocks table;
- ``figures``: the palette (a colour per model, for any number), readable fonts,
  ``embedded_figure`` (a matplotlib figure as a PNG data URI, or a note) and the Figures
  section's timelines and distributions;
- ``bars``: the bar figures (throughput, latency, scaling), estimates with interval whiskers;
- ``scaling``: the scaling curve (V_total against k) and the interference matrix;
- ``headline``, ``summary``: the headline's tables and its sentences;
- ``int4``, ``telemetry``: the "16-bit vs INT4" and "Utilisation and energy" sections;
- ``wall_figures``, ``wall``: the "Where is the wall" section;
- ``schedules``: the "Schedules" section (lockstep and single-thread against free
  co-location);
- ``render``: the Jinja2 environment, ``render_report`` (DataFrames -> HTML) and
  ``write_report`` (metrics directory -> HTML file).

Import rule: modules import each other's public names only, in that order (``render`` last;
no cycle). Outside this subpackage the report imports only ``dualbench.analysis`` (the column
lists, the percentile counts' rule, the layout order of ``analysis.layouts``, the contention
models and traffic), ``dualbench.config.vocabulary`` (the layout grammar) and
``dualbench.errors``.
"""
