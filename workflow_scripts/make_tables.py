from unpoison.report.tables import (
    detection_table, reference_table, summary_markdown, summary_table, unlearning_table, write_csv, write_text,
)
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    det = detection_table(i.detection, p.truth_detectors)
    unl = unlearning_table(i.unlearned, i.poisoned if p.with_none else [], p.detectors)
    summary = summary_table(det, unl, reference_table(i.poisoned, i.clean_model))
    write_csv(det, o.detection)
    write_csv(unl, o.unlearning)
    write_csv(summary, o.summary, seeds=det.seed)
    write_text(summary_markdown(summary), o.markdown, seeds=det.seed)
