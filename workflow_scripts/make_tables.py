from unpoison.report.tables import detection_table, summary_markdown, summary_table, unlearning_table, write_csv, write_text
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    det = detection_table(i.detection)
    unl = unlearning_table(i.unlearned, i.poisoned, snakemake.params.detectors)
    summary = summary_table(det, unl)
    write_csv(det, o.detection)
    write_csv(unl, o.unlearning)
    write_csv(summary, o.summary, seeds=det.seed)
    write_text(summary_markdown(summary), o.markdown, seeds=det.seed)
