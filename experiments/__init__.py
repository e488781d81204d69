"""Studies: variants x suites, evaluated on the same units and compared in one table.

`experiments.study` is the driver (entries -> build what is missing -> evaluate -> time in one process ->
table); each study module defines a `Study` of entries (`experiments.ablations`: the ActDistill ablations).
Policy families know nothing of studies; studies compose families, training recipes and the harness.
"""
