"""Importers for real CRM exports: a column mapping turns a CSV or Parquet export into canonical
tables plus custom attributes, so the same feature build and training run on it.

``mapping`` (the YAML format), ``reader`` (files, placeholders, joins), ``values`` (parsing cells),
``mappers`` (pure: export -> canonical tables, rejections, attributes), ``manifest`` (what an import
leaves for the feature jobs and training), ``report`` and ``run`` (the edge that writes files).
See ``README.md`` in this folder for the mapping format.
"""
