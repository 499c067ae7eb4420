from unpoison.report.gus import GUS_COLUMNS, gus_markdown, gus_rows, gus_summary
from unpoison.report.tables import write_csv, write_text
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    rows = gus_rows(i.poisoned, i.unlearned)
    write_csv(rows[GUS_COLUMNS], o.gus, seeds=rows.seed)
    write_text(gus_markdown(gus_summary(rows)), o.markdown, seeds=rows.seed)
