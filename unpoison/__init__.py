"""unpoison: find and remove data poisons from trained image classifiers with Delta-Influence.

The library never imports snakemake: workflow scripts unpack the ``snakemake`` object and call the
functions here. Detectors, unlearners, attacks, models and dataset sources are registries; adding one is
one module plus one registry entry.
"""

__version__ = "0.1.0"
