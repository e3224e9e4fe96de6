# Round 0: semantic and instance models trained on the mixed source; the oracle: the same
# models trained on the target train labels; translated: round 0 on the translated mix;
# gan_samples: round 0's semantic model with SemanticGAN's sampled pairs (semantic_gan.source_share). Each
# pretraining run of the plan (every seed, and experiments that change pretraining) has a folder.

PRETRAINING = runs_where(lambda run: run.pretraining)
# semantic pretraining also trains the gan_samples runs (round 0 with SemanticGAN's sampled pairs)
PRETRAINING_CO_LEARNING = runs_where(lambda run: run.pretraining and co_learning(run), sampled=True)


rule pretrain_semantic:
    input:
        unpack(training_inputs),
        target=co_learning_target,
        val=validation_cache("semantic"),
    output:
        model=f"{RESULTS}/{runs_where(lambda run: run.pretraining and not co_learning(run), sampled=True)}/semantic/model.pt",
    params:
        **stage_params("pretrain-semantic", run_settings("semantic")),
        target=optional("--target", "target"),
        translated=optional("--translated", "translated", f" --translated-share {config['mixing']['translated']}"),
        sampled=optional("--sampled", "sampled", f" --sampled-share {config['semantic_gan']['source_share']}"),
        val=optional("--val-data", "val"),
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
        "selfpanoptic pretrain-semantic {params.settings} --data {input.data:q} {params.translated} {params.sampled}"
        " {params.target} {params.val}"
        " --out {output.model:q}"
        " --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --processes {resources.processes} --device {params.device} --threads {threads}"
        " --desc 'pretrain semantic [{wildcards.run}]' > {log:q} 2>&1"


# with co-learning, the stage also writes its figure beside the model
use rule pretrain_semantic as pretrain_semantic_co_learning with:
    output:
        model=f"{RESULTS}/{PRETRAINING_CO_LEARNING}/semantic/model.pt",
        figure=f"{RESULTS}/{PRETRAINING_CO_LEARNING}/semantic/co_learning.png",


rule pretrain_instance:
    input:
        unpack(training_inputs),
        val=validation_cache("instance"),
    output:
        f"{RESULTS}/{PRETRAINING}/instance/{{group}}/model.pt",
    params:
        **stage_params("pretrain-instance", run_settings("instance")),
        translated=optional("--translated", "translated", f" --translated-share {config['mixing']['translated']}"),
        val=optional("--val-data", "val"),
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
        " --data-workers {resources.data_workers} --processes {resources.processes} --device {params.device} --threads {threads}"
        " --desc 'pretrain instance [{wildcards.run}]' > {log:q} 2>&1"


rule predict_semantic:
    input:
        model=f"{RESULTS}/{{run}}/semantic/model.pt",
        data=f"{RESULTS}/data/cache/target_{{split}}.h5",
        # the val split is predicted at its ground truth's resolution
        full_resolution=lambda wildcards: f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv" if wildcards.split == VAL_SPLIT else [],
    output:
        f"{RESULTS}/{{run}}/semantic/pred_target_{{split}}.h5",
    params:
        **stage_params("predict-semantic", run_settings("inference")),
        full_resolution=optional("--full-resolution", "full_resolution"),
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
        models=lambda wildcards: instance_models(model_run(wildcards.run).folder),
        semantic=f"{RESULTS}/{{run}}/semantic/pred_target_{{split}}.h5",
        data=f"{RESULTS}/data/cache/target_{{split}}.h5",
    output:
        f"{RESULTS}/{{run}}/instance/pred_target_{{split}}.h5",
    params:
        **stage_params("predict-instance", run_settings("instance"), run_settings("inference")),
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
