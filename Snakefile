# SelfPanoptic: self-trained domain-adaptive panoptic segmentation.
# Thin on purpose: the config, its validation, and the stages in workflow/rules/.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    group="|".join(GROUPS),
    run=folder_pattern(PLAN.folders() + list(GAN_RUNS)),


include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/translate.smk"
include: "workflow/rules/semantic_gan.smk"
include: "workflow/rules/selftrain.smk"
include: "workflow/rules/evaluate.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
