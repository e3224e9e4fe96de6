# Data stages: toy domains -> dataset index -> mixed source -> HDF5 caches at working resolution.
# Only the datasets of mixing.sources are indexed. The toy generator writes all three domains in
# one job whatever the sources, so that switching protocols reuses the toy data, never regenerates it.


if TOY:

    rule synthesize_toy_domains:
        output:
            synthia=directory(config["datasets"]["synthia"]["root"]),
            gta=directory(config["datasets"]["gta"]["root"]),
            target=directory(config["datasets"]["target"]["root"]),
        params:
            **stage_params("synthesize", settings_option("toy")),
        log:
            f"{RESULTS}/logs/synthesize_toy_domains.log",
        threads: job_threads("data")
        resources:
            **job_resources("data"),
        conda:
            ENV
        shell:
            "selfpanoptic synthesize {params.settings} --threads {threads}"
            " --synthia-root {output.synthia:q} --gta-root {output.gta:q}"
            " --target-root {output.target:q} > {log:q} 2>&1"


rule index_dataset:
    input:
        root=lambda wildcards: config["datasets"][wildcards.dataset]["root"],
    output:
        f"{RESULTS}/data/index/{{dataset}}_{{split}}.csv",
    wildcard_constraints:
        dataset="synthia|gta|target",
    params:
        **stage_params("index"),
        format=lambda wildcards: DATASET_FORMATS[wildcards.dataset],
        split=lambda wildcards: "" if wildcards.split == "all" else f"--split {wildcards.split}",
        # the target's val split is predicted and scored at its files' resolution, one size for all
        one_size=lambda wildcards: "--one-size" if (wildcards.dataset, wildcards.split) == ("target", VAL_SPLIT) else "",
        reader=reader_options,
        # Per dataset, so that changing one dataset's policy re-indexes that dataset only.
        unpaired=lambda wildcards: config["datasets"][wildcards.dataset]["unpaired"],
        size_mismatch=lambda wildcards: config["datasets"][wildcards.dataset]["size_mismatch"],
    log:
        f"{RESULTS}/logs/index_dataset/{{dataset}}_{{split}}.log",
    threads: job_threads("data")
    resources:
        **job_resources("data"),
    conda:
        ENV
    shell:
        "selfpanoptic index --name {wildcards.dataset} --format {params.format}"
        " --root {input.root:q} {params.split} {params.reader} {params.one_size} --unpaired {params.unpaired}"
        " --size-mismatch {params.size_mismatch} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule mix_sources:
    input:
        # every image of the first source; the two-source mix filters the second (gta)
        unpack(lambda wildcards: {role: f"{RESULTS}/data/index/{name}_all.csv" for role, name in zip(("base", "extra"), SOURCES)}),
    output:
        manifest=f"{RESULTS}/data/mixed_source.csv",
        stats=f"{RESULTS}/data/mixing_stats.csv",
        page=report(
            f"{RESULTS}/data/mixing_stats.md",
            caption="../report/mixing.rst",
            category="Data",
        ),
    params:
        # not mixing.translated: it chooses batches of the run `translated`, not the source's images
        **stage_params("mix", settings_option("mixing", ["sources", "require_all", "min_pixels"])),
        extra=optional("--extra", "extra"),
    log:
        f"{RESULTS}/logs/mix_sources.log",
    conda:
        ENV
    shell:
        "selfpanoptic mix {params.settings} --base {input.base:q} {params.extra}"
        " --out {output.manifest:q} --stats {output.stats:q} --stats-md {output.page:q} > {log:q} 2>&1"


rule cache_dataset:
    input:
        cache_manifest,
    output:
        f"{RESULTS}/data/cache/{{name}}.h5",
    wildcard_constraints:
        name="source|translated_source|target_[A-Za-z0-9]+",
    params:
        **stage_params("cache", settings_option("data")),
    log:
        f"{RESULTS}/logs/cache_dataset/{{name}}.log",
    threads: job_threads("data")
    resources:
        **job_resources("data"),
    conda:
        ENV
    shell:
        "selfpanoptic cache {params.settings} --manifest {input:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


if TARGET["format"] == "images":

    rule panoptic_ground_truth:
        input:
            f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv",
        output:
            json=PANOPTIC_GT_JSON,
            folder=directory(PANOPTIC_GT_FOLDER),
        params:
            **stage_params("panoptic-gt"),
        log:
            f"{RESULTS}/logs/panoptic_ground_truth.log",
        conda:
            ENV
        shell:
            "selfpanoptic panoptic-gt --manifest {input:q} --out-json {output.json:q}"
            " --out-folder {output.folder:q} --quiet > {log:q} 2>&1"


localrules:
    mix_sources,
