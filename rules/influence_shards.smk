# With influence.shards K > 1 (docs/cluster.md): the covariance, lambda and score passes of a model run as K jobs
# over disjoint parts of the training set; aggregate_covariance eigen-decomposes once; fit_ekfac sums the lambda
# shards and score_probes gathers the score parts (rules/influence.smk), into the same artifacts as one job.
# Every shard job takes resources.fit_ekfac (factor shards) or resources.score_probes (score shards).
SHARD_DIR = RUN + "/ekfac_shards"


def factor_resources(rule_name):
    return {k: res(rule_name, k) for k in ("gpu", "mem_mb", "runtime")}


rule fit_covariance_shard:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
        queries=ancient(rules.select_queries.output.queries),
    output:
        shard_dir=directory(SHARD_DIR + "/covariance/{shard}"),
    params:
        settings=factor_settings().science(),
        seed=wildcard("seed", int),
        shard=wildcard("shard", int),
        shards=SHARDS,
        execution=execution(factor_settings()),
    threads: res("fit_ekfac", "threads")
    resources:
        **factor_resources("fit_ekfac"),
    priority: STAGE_PRIORITY["fit_covariance_shard"]
    log:
        RUN + "/logs/fit_covariance_shard/{shard}.log",
    script:
        "../workflow_scripts/fit_covariance_shard.py"


rule aggregate_covariance:
    input:
        model=rules.train_model.output.model,
        queries=ancient(rules.select_queries.output.queries),
        covariance_shards=expand(SHARD_DIR + "/covariance/{shard}", shard=range(SHARDS), allow_missing=True),
    output:
        eigen=directory(SHARD_DIR + "/eigen"),
    params:
        settings=factor_settings().science(),
        seed=wildcard("seed", int),
        execution=execution(factor_settings()),
    threads: res("fit_ekfac", "threads")
    resources:
        **factor_resources("fit_ekfac"),
    priority: STAGE_PRIORITY["aggregate_covariance"]
    log:
        RUN + "/logs/aggregate_covariance.log",
    script:
        "../workflow_scripts/aggregate_covariance.py"


rule fit_lambda_shard:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
        queries=ancient(rules.select_queries.output.queries),
        eigen=rules.aggregate_covariance.output.eigen,
    output:
        shard_dir=directory(SHARD_DIR + "/lambda/{shard}"),
    params:
        settings=factor_settings().science(),
        seed=wildcard("seed", int),
        shard=wildcard("shard", int),
        shards=SHARDS,
        execution=execution(factor_settings()),
    threads: res("fit_ekfac", "threads")
    resources:
        **factor_resources("fit_ekfac"),
    priority: STAGE_PRIORITY["fit_lambda_shard"]
    log:
        RUN + "/logs/fit_lambda_shard/{shard}.log",
    script:
        "../workflow_scripts/fit_lambda_shard.py"


rule score_shard:
    input:
        unpack(score_inputs),
    output:
        part=RUN + "/scores/parts/{shard}.pt",
    params:
        n_b=config["influence"]["n_b"],
        settings=score_settings().science(),
        seed=wildcard("seed", int),
        shard=wildcard("shard", int),
        shards=SHARDS,
        probes=score_outputs_names(),
        execution=execution(score_settings()),
    threads: res("score_probes", "threads")
    resources:
        **factor_resources("score_probes"),
    priority: STAGE_PRIORITY["score_shard"]
    log:
        RUN + "/logs/score_shard/{shard}.log",
    script:
        "../workflow_scripts/score_shard.py"
