# Round 0: semantic and instance models trained on the mixed source; the oracle: the same
# models trained on the target train labels. Outputs under results/{run}/ with run = round0 | oracle | translated,
# each also under results/seed{s}/ for the repeats of `seeds`.


rule pretrain_semantic:
    input:
        data=training_cache,
        translated=translated_cache,
        target=co_learning_target,
        val=validation_cache("semantic"),
    output:
        model=f"{RESULTS}/{{run}}/semantic/model.pt",
        **co_learning_figure("semantic", f"{RESULTS}/{{run}}"),
    wildcard_constraints:
        run=PRETRAIN_RUNS,
    params:
        **stage_params("pretrain-semantic", seeded_settings("semantic")),
        target=target_option,
        translated=translated_option,
        val=val_option,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.run}/semantic/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/pretrain_semantic/{{run}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic pretrain-semantic {params.settings} --data {input.data:q} {params.translated}"
        " {params.target} {params.val}"
        " --out {output.model:q}"
        " --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --device {params.device} --threads {threads}"
        " --desc 'pretrain semantic [{wildcards.run}]' > {log:q} 2>&1"


rule pretrain_instance:
    input:
        data=training_cache,
        translated=translated_cache,
        val=validation_cache("instance"),
    output:
        f"{RESULTS}/{{run}}/instance/{{group}}/model.pt",
    wildcard_constraints:
        run=PRETRAIN_RUNS,
    params:
        **stage_params("pretrain-instance", seeded_settings("instance")),
        translated=translated_option,
        val=val_option,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.run}/instance/{wildcards.group}/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/pretrain_instance/{{run}}_{{group}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic pretrain-instance {params.settings} --data {input.data:q} {params.translated} {params.val}"
        " --group {wildcards.group}"
        " --out {output:q} --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --device {params.device} --threads {threads}"
        " --desc 'pretrain instance [{wildcards.run}]' > {log:q} 2>&1"


rule predict_semantic:
    input:
        model=f"{RESULTS}/{{run}}/semantic/model.pt",
        data=f"{RESULTS}/data/cache/target_{{split}}.h5",
        full_resolution=full_resolution_manifest,
    output:
        f"{RESULTS}/{{run}}/semantic/pred_target_{{split}}.h5",
    params:
        **stage_params("predict-semantic", settings_option("inference")),
        full_resolution=full_resolution_option,
        device=config["device"],
    log:
        f"{RESULTS}/logs/predict_semantic/{{run}}_{{split}}.log",
    threads: job_threads("predict")
    resources:
        **job_resources("predict"),
    conda:
        ENV
    shell:
        "selfpanoptic predict-semantic {params.settings} --model {input.model:q} --data {input.data:q}"
        " {params.full_resolution} --out {output:q} --device {params.device} --threads {threads} > {log:q} 2>&1"


rule predict_instance:
    input:
        models=instance_models,
        semantic=f"{RESULTS}/{{run}}/semantic/pred_target_{{split}}.h5",
        data=f"{RESULTS}/data/cache/target_{{split}}.h5",
    output:
        f"{RESULTS}/{{run}}/instance/pred_target_{{split}}.h5",
    params:
        **stage_params("predict-instance", settings_option("instance"), settings_option("inference")),
        command="predict-instance",
        source="",
        device=config["device"],
    log:
        f"{RESULTS}/logs/predict_instance/{{run}}_{{split}}.log",
    threads: job_threads("predict")
    resources:
        **job_resources("predict"),
    conda:
        ENV
    shell:
        "selfpanoptic {params.command} {params.settings} --models {input.models:q}"
        " --semantic {input.semantic:q} --data {input.data:q} {params.source} --out {output:q}"
        " --device {params.device} --threads {threads} > {log:q} 2>&1"
