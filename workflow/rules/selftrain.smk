# Self-training rounds 1..R on the target train images: round r starts from round r-1's models.
# Per round: the semantic pseudo-labels it starts from (for the audit and the class prior), SAC
# semantic self-training, then per class group SPOCO instance self-training on pseudo masks
# clustered inside this round's semantic prediction. Outputs under results/{tree}round{r}/, where
# the tree is "" for the main rounds, else the seed and variant (seed1/, experiments/<name>/).


rule pseudo_label_semantic:
    input:
        model=previous_round_model("semantic/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        guidance=guidance_input,
    output:
        f"{RESULTS}/{{tree}}round{{r}}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
    params:
        **stage_params("pseudo-semantic", selftrain_settings(["semantic", "guidance"])),
        guidance=guidance_option,
        device=config["device"],
    log:
        f"{RESULTS}/logs/pseudo_label_semantic/{{tree}}round{{r}}.log",
    threads: job_threads("predict")
    resources:
        **job_resources("predict"),
    conda:
        ENV
    shell:
        "selfpanoptic pseudo-semantic {params.settings} --model {input.model:q} --data {input.data:q} --source {input.source:q}"
        " --round {wildcards.r} {params.guidance} --out {output:q} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selftrain_semantic:
    input:
        model=previous_round_model("semantic/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        pseudo=f"{RESULTS}/{{tree}}round{{r}}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
        guidance=guidance_input,
        val=validation_cache("selftrain", "semantic"),
    output:
        model=f"{RESULTS}/{{tree}}round{{r}}/semantic/model.pt",
        **co_learning_figure("selftrain", f"{RESULTS}/{{tree}}round{{r}}"),
    params:
        **stage_params("selftrain-semantic", selftrain_settings(["semantic", "guidance"])),
        guidance=guidance_option,
        val=val_option,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.tree}round{wildcards.r}/semantic/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/selftrain_semantic/{{tree}}round{{r}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic selftrain-semantic {params.settings} --model {input.model:q} --data {input.data:q}"
        " --source {input.source:q} --pseudo-labels {input.pseudo:q} {params.guidance} {params.val} --round {wildcards.r}"
        " --out {output.model:q} --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --device {params.device} --threads {threads}"
        " --desc 'self-train semantic [{wildcards.tree}round {wildcards.r}]' > {log:q} 2>&1"


rule selftrain_instance:
    input:
        model=previous_round_model("instance/{group}/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        semantic=f"{RESULTS}/{{tree}}round{{r}}/semantic/pred_target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        val=validation_cache("selftrain", "instance"),
    output:
        f"{RESULTS}/{{tree}}round{{r}}/instance/{{group}}/model.pt",
    params:
        **stage_params("selftrain-instance", selftrain_settings(["instance"]), settings_option("instance")),
        val=val_option,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.tree}round{wildcards.r}/instance/{wildcards.group}/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/selftrain_instance/{{tree}}round{{r}}_{{group}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic selftrain-instance {params.settings}"
        " --model {input.model:q} --data {input.data:q} --semantic {input.semantic:q} --source {input.source:q} {params.val}"
        " --group {wildcards.group} --round {wildcards.r} --out {output:q} --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --device {params.device} --threads {threads} --desc 'self-train instance [{wildcards.tree}round {wildcards.r}]'"
        " > {log:q} 2>&1"


use rule predict_instance as pseudo_label_instance with:
    input:
        models=previous_round_instance_models,
        semantic=f"{RESULTS}/{{tree}}round{{r}}/semantic/pred_target_{TRAIN_SPLIT}.h5",
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
    output:
        f"{RESULTS}/{{tree}}round{{r}}/pseudo/instance_target_{TRAIN_SPLIT}.h5",
    params:
        **stage_params(
            "pseudo-instance", selftrain_settings(["instance"]), settings_option("instance"), settings_option("inference")
        ),
        command="pseudo-instance",
        source=lambda wildcards, input: f"--source {shlex.quote(input.source)}",
        device=config["device"],
    log:
        f"{RESULTS}/logs/pseudo_label_instance/{{tree}}round{{r}}.log",


rule audit_pseudo_labels:
    input:
        semantic=f"{RESULTS}/{{tree}}round{{r}}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
        instance=pseudo_instance_labels,
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
    output:
        report(
            f"{RESULTS}/{{tree}}round{{r}}/pseudo/audit.txt",
            caption="../report/pseudo_audit.rst",
            category="Pseudo-labels",
            subcategory="{tree}round {r}",
        ),
    params:
        **stage_params("audit"),
    log:
        f"{RESULTS}/logs/audit_pseudo_labels/{{tree}}round{{r}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic audit {input.semantic:q} {input.instance:q} --ground-truth {input.data:q}"
        " > {output:q} 2> {log:q}"


localrules:
    audit_pseudo_labels,
