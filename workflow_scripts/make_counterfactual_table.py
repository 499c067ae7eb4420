from unpoison.report.tables import counterfactual_markdown, counterfactual_table, write_csv, write_text
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    table = counterfactual_table(snakemake.input.counterfactual)
    write_csv(table, snakemake.output.counterfactual)
    write_text(counterfactual_markdown(table), snakemake.output.markdown, seeds=table.attrs["seeds"])
