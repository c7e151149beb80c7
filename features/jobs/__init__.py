"""Batch feature jobs: canonical tables (``settings.raw_dir``) in, feature tables (``feature_dir``) out.

One module per feature table, each with a ``build_<table>(raw, as_of)`` that is a pure function of
DataFrames; ``run.build_all`` does the reading and writing. See ``README.md`` in this folder for
every table's key, row times and columns.
"""
