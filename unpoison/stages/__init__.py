"""One function per workflow stage: paths and plain settings in, artifacts out (written atomically).

Workflow scripts unpack ``snakemake`` and call exactly one of these; tests call them directly.
"""
