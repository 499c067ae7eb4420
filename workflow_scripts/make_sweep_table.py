from unpoison.report.tables import sweep_table, write_csv
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    write_csv(sweep_table(snakemake.input.sweep), snakemake.output.sweep)
