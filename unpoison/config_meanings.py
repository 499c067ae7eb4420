"""What each key of the config schema means, as docs/configuration.md prints it (see unpoison.config_docs)."""

# Meanings of the schema's keys (dotted paths; `*` = any name). Method settings document themselves (Args:).
MEANINGS = {
    "datasets": "datasets to run, each defined under `dataset_settings`",
    "attacks": "attacks to run (registered names, see [methods](methods.md#attacks)); each configured per dataset "
    "under `dataset_settings.<dataset>.attacks`",
    "seeds": "experiment seeds; a seed fixes every random choice of a run (victim and target class, poisons, queries, "
    "transforms, initialisation, data order), each stage drawing from its own stream",
    "detectors": "detectors to run: registered names or named variants (a `detector_settings` entry with `method:`)",
    "unlearners": "unlearners to run: registered names or named variants; `none` is the poisoned model itself",
    "device": "where jobs compute: `auto` = CUDA when the job sees a GPU, else the CPU (execution only)",
    "plugins": "Python modules imported before the config is checked and in every job, to register your own "
    "attacks, detectors or unlearners ([architecture](architecture.md#add-your-own-detector-in-one-file))",
    "counterfactual": "detectors whose flags get paper Table 3's counterfactual (retrain without the detected vs "
    "without the missed poisons; reads the ground truth by design)",
    "unlearn_on": "unlearner → the detectors whose flags it unlearns (default: every detector of the grid); names "
    "outside the grid are dropped",
    "dataset_settings": "one entry per dataset name: its source and the source's keys, `model`, `train`, `attacks`",
    "dataset_settings.*.source": "where the images come from: a registered source ([datasets](datasets.md))",
    "dataset_settings.*.model": "the architecture: `name` (a registered model) and that model's options (below)",
    "dataset_settings.*.train": "the training recipe of every model of this dataset (keys below)",
    "dataset_settings.*.attacks": "attack name → its parameters on this dataset (keys below, per attack)",
    "queries.count": "affected test points handed to the defender per run; detectors intersect their flags over "
    "the first `n_points` of them (paper Tables 4–5: 1, 5, 10)",
    "queries.controls": "clean test images the model classifies correctly as the query's predicted class, scored "
    "in the same pass, only for detectors with a `control_probe` (`delta_influence_contrast`, "
    "`delta_influence_controls`)",
    "influence.n_b": "transformed copies of each query (random label and/or augmentation) scored beside it "
    "(the paper: 50)",
    "influence.shards": "jobs per influence pass over disjoint parts of the training set (docs/cluster.md)",
    "influence.factors.batch_size": "per-device batch of the covariance and lambda stages (execution only)",
    "influence.factors.amp": "autocast while fitting: none, bf16 or fp16 (GPU)",
    "influence.factors.covariance_max_examples": "fit the covariance stage on a seeded random subset of this many "
    "training points; null = all",
    "influence.factors.lambda_max_examples": "fit the eigenvalue-correction (lambda) stage on a seeded random subset "
    "of this many training points; null = all",
    "influence.factors.num_workers": "DataLoader workers (execution only; data are in memory, 0 is usually fastest)",
    "influence.factors.pin_memory": "pin DataLoader memory (execution only)",
    "influence.scores.train_batch_size": "per-device training batch while scoring (execution only)",
    "influence.scores.query_batch_size": "query gradients computed this many at a time, then accumulated: every "
    "query is still scored in one pass (execution only)",
    "influence.scores.amp": "autocast while scoring: none, bf16 or fp16 (GPU)",
    "influence.scores.query_gradient_low_rank": "low-rank query gradients (saves memory, approximates); null = exact",
    "influence.scores.damping_factor": "damping added to the EK-FAC eigenvalues; null = kronfluence's heuristic "
    "(0.1 × mean eigenvalue)",
    "influence.scores.num_workers": "DataLoader workers (execution only)",
    "influence.scores.pin_memory": "pin DataLoader memory (execution only)",
    "sweep.taus": "τ values of the Δ-rule sweep (from saved scores, no re-scoring)",
    "sweep.ks": "k values of the Δ-rule sweep",
    "sweep.thresholds": "EK-FAC thresholds of the sweep",
    "sweep.n_points": "affected test points intersected in the sweep (the first n of the run's queries)",
    "relearning.enabled": "fine-tune each evaluated model briefly on clean data the defender keeps, then measure "
    "PSR and accuracy again (`psr_relearned`, `acc_relearned`)",
    "relearning.fraction": "share of the training set fine-tuned on: a fixed random subset drawn by the seed, "
    "minus the detector's flags",
    "relearning.epochs": "passes over that subset",
    "relearning.lr_factor": "constant learning rate of the fine-tuning as a share of the recipe's peak lr",
    "detector_settings": "detector name → its settings (below, per method), or a named variant "
    "`{method: <registered detector>, ...settings}`",
    "unlearner_settings": "unlearner name → its settings (below, per method), or a named variant "
    "`{method: <registered unlearner>, ...settings}`",
    "resources": "per rule: `threads`, `mem_mb`, `runtime` (minutes), `gpu` (a count); `default` for rules without "
    "an entry ([cluster](cluster.md))",
    "train.epochs": "passes over the training set",
    "train.batch_size": "images per SGD step (≥ 2: BatchNorm)",
    "train.lr": "peak SGD learning rate",
    "train.momentum": "SGD momentum",
    "train.nesterov": "Nesterov momentum",
    "train.weight_decay": "L2 weight decay",
    "train.milestones": "epochs at which lr ×= gamma (increasing, each < epochs)",
    "train.gamma": "learning-rate factor at each milestone",
    "train.crop_padding": "random shift of up to this many pixels (zero fill); 0 = off",
    "train.flip": "random horizontal flip",
    "train.amp": "autocast: none, bf16 or fp16 (CUDA; bf16 also runs on CPU, slowly)",
    "train.channels_last": "NHWC memory format (faster convolutions on recent GPUs)",
    "train.eval_batch_size": "inference batch (execution only)",
    "resource.threads": "CPU threads of the job (torch's threads are capped at it)",
    "resource.mem_mb": "memory in MB",
    "resource.runtime": "time limit in minutes",
    "resource.gpu": "GPUs (a count; 0 = none)",
}
