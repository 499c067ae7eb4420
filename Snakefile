# Δ-Influence: detect and unlearn data poisons. See README.md (architecture) and config.yaml.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The library lives beside this file; make it importable here and in every job (also under --sdm conda).
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))

from unpoison.config import ConfigError, check_config, coerce_cli_scalars

configfile: os.path.join(workflow.basedir, "config.yaml")


# Every rule runs in this environment under `--sdm conda` (ignored otherwise).
conda: "envs/unpoison.yaml"

config.update(coerce_cli_scalars(dict(config)))  # --config values arrive as strings
validate(config, "schemas/config.schema.yaml")
try:
    # Data checks (npz present, poison count ≤ class size) only in the main process, not in every cluster job.
    check_config(config, check_data=workflow.is_main_process)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/influence.smk"
include: "rules/detect.smk"
include: "rules/unlearn.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        rules.make_tables.output,
        figure_targets(),
    default_target: True
