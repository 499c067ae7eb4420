# Δ-Influence: detect and unlearn data poisons. See README.md, docs/architecture.md and config.yaml.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The library lives beside this file; make it importable here and in every job (also under --sdm conda).
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))

from unpoison.config import ConfigError, coerce_cli_scalars, validate_config
from unpoison.provenance import CONFIG_HASH_ENV, config_hash
from unpoison.registry import PLUGINS_ENV, load_plugins

configfile: os.path.join(workflow.basedir, "config.yaml")


report: "report/workflow.rst"  # snakemake --report report.html: every table and figure, captions in report/

# Every rule runs in this environment under `--sdm conda` (ignored otherwise).
conda: "envs/unpoison.yaml"

config.update(coerce_cli_scalars(dict(config)))  # --config values arrive as strings
try:
    # Your own attacks, detectors and unlearners (config `plugins:`), here and in every job.
    load_plugins(config.get("plugins", []))
    os.environ[PLUGINS_ENV] = os.pathsep.join(config.get("plugins", []))
    # Schema, every method's settings, and (main process only, not in every cluster job) the data themselves.
    validate_config(config, check_data=workflow.is_main_process)
except ValueError as err:  # ConfigError, or a plugin that cannot be imported
    raise WorkflowError(f"invalid config: {err}") from None
validate(config, "schemas/config.schema.yaml")  # passes by now; fills the schema's defaults
# Every result records this hash of the validated config (unpoison.provenance); jobs inherit it.
os.environ[CONFIG_HASH_ENV] = config_hash(config)


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/influence.smk"
include: "rules/influence_shards.smk"
include: "rules/detector_inputs.smk"
include: "rules/detect.smk"
include: "rules/unlearn.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/paper.smk"


rule all:
    input:
        report_targets(),
        rules.make_paper.output,
    default_target: True
