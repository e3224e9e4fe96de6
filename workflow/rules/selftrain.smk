# Self-training rounds 1..R on the target train images: round r starts from round r-1's models.
# Per round: the semantic pseudo-labels it starts from (for the audit and the class prior), SAC
# semantic self-training, then per class group SPOCO instance self-training on pseudo masks
# clustered inside this round's semantic prediction. Every self-training round of the plan (each
# seed and experiment) has a folder; it starts from the run the plan names (Run.start).

ROUNDS = runs_where(lambda run: not run.pretraining)
ROUNDS_CO_LEARNING = runs_where(lambda run: not run.pretraining and co_learning(run))


rule pseudo_label_semantic:
    input:
        model=start_path("semantic/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        guidance=guidance_input,
    output:
        f"{RESULTS}/{ROUNDS}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
    params:
        **stage_params("pseudo-semantic", run_settings("selftrain", ["semantic", "guidance"])),
        guidance=optional("--guidance-instances", "guidance"),
        round=lambda wildcards: PLAN.run(wildcards.run).round,
        device=config["device"],
    log:
        f"{RESULTS}/logs/pseudo_label_semantic/{{run}}.log",
    threads: job_threads("predict")
    resources:
        **job_resources("predict"),
    conda:
        ENV
    shell:
        "selfpanoptic pseudo-semantic {params.settings} --model {input.model:q} --data {input.data:q} --source {input.source:q}"
        " --round {params.round} {params.guidance} --out {output:q} --device {params.device} --threads {threads}"
        " > {log:q} 2>&1"


rule selftrain_semantic:
    input:
        model=start_path("semantic/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        pseudo=f"{RESULTS}/{{run}}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
        guidance=guidance_input,
        val=validation_cache("selftrain", "semantic"),
    output:
        model=f"{RESULTS}/{runs_where(lambda run: not run.pretraining and not co_learning(run))}/semantic/model.pt",
    params:
        **stage_params("selftrain-semantic", run_settings("selftrain", ["semantic", "guidance"])),
        guidance=optional("--guidance-instances", "guidance"),
        val=optional("--val-data", "val"),
        round=lambda wildcards: PLAN.run(wildcards.run).round,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.run}/semantic/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/selftrain_semantic/{{run}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic selftrain-semantic {params.settings} --model {input.model:q} --data {input.data:q}"
        " --source {input.source:q} --pseudo-labels {input.pseudo:q} {params.guidance} {params.val} --round {params.round}"
        " --out {output.model:q} --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --processes {resources.processes} --device {params.device} --threads {threads}"
        " --desc 'self-train semantic [{wildcards.run}]' > {log:q} 2>&1"


# with co-learning, the stage also writes its figure beside the model
use rule selftrain_semantic as selftrain_semantic_co_learning with:
    output:
        model=f"{RESULTS}/{ROUNDS_CO_LEARNING}/semantic/model.pt",
        figure=f"{RESULTS}/{ROUNDS_CO_LEARNING}/semantic/co_learning.png",


rule selftrain_instance:
    input:
        model=start_path("instance/{group}/model.pt"),
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        semantic=f"{RESULTS}/{{run}}/semantic/pred_target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        val=validation_cache("selftrain", "instance"),
    output:
        f"{RESULTS}/{ROUNDS}/instance/{{group}}/model.pt",
    params:
        **stage_params("selftrain-instance", run_settings("selftrain", ["instance"]), run_settings("instance")),
        val=optional("--val-data", "val"),
        round=lambda wildcards: PLAN.run(wildcards.run).round,
        work_dir=lambda wildcards: f"{RESULTS}/{wildcards.run}/instance/{wildcards.group}/train",
        device=config["device"],
    log:
        f"{RESULTS}/logs/selftrain_instance/{{run}}_{{group}}.log",
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    conda:
        ENV
    shell:
        "selfpanoptic selftrain-instance {params.settings}"
        " --model {input.model:q} --data {input.data:q} --semantic {input.semantic:q} --source {input.source:q} {params.val}"
        " --group {wildcards.group} --round {params.round} --out {output:q} --work-dir {params.work_dir:q}"
        " --data-workers {resources.data_workers} --processes {resources.processes} --device {params.device} --threads {threads} --desc 'self-train instance [{wildcards.run}]'"
        " > {log:q} 2>&1"


use rule predict_instance as pseudo_label_instance with:
    input:
        models=lambda wildcards: instance_models(PLAN.run(wildcards.run).start),
        semantic=f"{RESULTS}/{{run}}/semantic/pred_target_{TRAIN_SPLIT}.h5",
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
    output:
        f"{RESULTS}/{ROUNDS}/pseudo/instance_target_{TRAIN_SPLIT}.h5",
    params:
        **stage_params(
            "pseudo-instance", run_settings("selftrain", ["instance"]), run_settings("instance"), run_settings("inference")
        ),
        command="pseudo-instance",
        source=lambda wildcards, input: f"--source {shlex.quote(input.source)}",
        device=config["device"],
    log:
        f"{RESULTS}/logs/pseudo_label_instance/{{run}}.log",


rule audit_pseudo_labels:
    input:
        semantic=f"{RESULTS}/{{run}}/pseudo/semantic_target_{TRAIN_SPLIT}.h5",
        instance=f"{RESULTS}/{{run}}/pseudo/instance_target_{TRAIN_SPLIT}.h5" if INSTANCES else [],
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
    output:
        report(
            f"{RESULTS}/{ROUNDS}/pseudo/audit.txt",
            caption="../report/pseudo_audit.rst",
            category="Pseudo-labels",
            subcategory="{run}",
        ),
    params:
        **stage_params("audit"),
    log:
        f"{RESULTS}/logs/audit_pseudo_labels/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic audit {input.semantic:q} {input.instance:q} --ground-truth {input.data:q}"
        " > {output:q} 2> {log:q}"


localrules:
    audit_pseudo_labels,
