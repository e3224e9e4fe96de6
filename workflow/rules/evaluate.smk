# Scores on the target val split at the ground truth's resolution, the label-free scores on the
# target train split, the official-format exports of each run's predictions, and the summary
# table of every run.


rule score_semantic:
    input:
        prediction=f"{RESULTS}/{{run}}/semantic/pred_target_{VAL_SPLIT}.h5",
        ground_truth=f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv",
    output:
        f"{RESULTS}/{{run}}/eval/semantic.csv",
    params:
        **stage_params("score-semantic"),
        run_name=run_name,
    log:
        f"{RESULTS}/logs/score_semantic/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic score-semantic --prediction {input.prediction:q} --ground-truth {input.ground_truth:q}"
        " --run {params.run_name} --out {output:q} --quiet > {log:q} 2>&1"


rule score_instance:
    input:
        prediction=f"{RESULTS}/{{run}}/instance/pred_target_{VAL_SPLIT}.h5",
        ground_truth=f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv",
    output:
        f"{RESULTS}/{{run}}/eval/instance.csv",
    params:
        **stage_params("score-instance", run_settings("evaluation")),
        run_name=run_name,
    log:
        f"{RESULTS}/logs/score_instance/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic score-instance {params.settings} --prediction {input.prediction:q}"
        " --ground-truth {input.ground_truth:q} --run {params.run_name} --out {output:q} --quiet > {log:q} 2>&1"


rule score_label_free:
    input:
        model=f"{RESULTS}/{{run}}/semantic/model.pt",
        data=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
        source=f"{RESULTS}/data/cache/source.h5",
        prediction=f"{RESULTS}/{{run}}/semantic/pred_target_{TRAIN_SPLIT}.h5",
        previous=previous_prediction,
    output:
        f"{RESULTS}/{{run}}/eval/label_free.csv",
    params:
        **stage_params("score-label-free"),
        run_name=run_name,
        previous=optional("--previous", "previous"),
        device=config["device"],
    log:
        f"{RESULTS}/logs/score_label_free/{{run}}.log",
    threads: job_threads("predict")
    resources:
        **job_resources("predict"),
    conda:
        ENV
    shell:
        "selfpanoptic score-label-free --model {input.model:q} --data {input.data:q} --source {input.source:q}"
        " --prediction {input.prediction:q} {params.previous} --run {params.run_name} --out {output:q}"
        " --device {params.device} --threads {threads} --quiet > {log:q} 2>&1"


rule select_round:
    input:
        [path for _, path in selection_rounds()],
    output:
        f"{RESULTS}/summary/selected_round.json",
    params:
        **stage_params("select-round", settings_option("selftrain", ["selection"])),
        rounds=" ".join(f"--round {shlex.quote(folder)} {shlex.quote(path)}" for folder, path in selection_rounds()),
    log:
        f"{RESULTS}/logs/select_round.log",
    conda:
        ENV
    shell:
        "selfpanoptic select-round {params.settings} {params.rounds} --out {output:q} > {log:q} 2>&1"


rule export_semantic:
    input:
        prediction=f"{RESULTS}/{{run}}/semantic/pred_target_{VAL_SPLIT}.h5",
        manifest=f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv",
    output:
        label_ids=directory(f"{RESULTS}/{{run}}/semantic/labelIds"),
        colour=directory(f"{RESULTS}/{{run}}/semantic/colour"),
    params:
        **stage_params("export-semantic"),
    log:
        f"{RESULTS}/logs/export_semantic/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic export-semantic --prediction {input.prediction:q} --manifest {input.manifest:q}"
        " --out {output.label_ids:q} --colour-out {output.colour:q} --quiet > {log:q} 2>&1"


rule export_instance:
    input:
        f"{RESULTS}/{{run}}/instance/pred_target_{VAL_SPLIT}.h5",
    output:
        directory(f"{RESULTS}/{{run}}/instance/official"),
    params:
        **stage_params("export-instance"),
    log:
        f"{RESULTS}/logs/export_instance/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic export-instance --prediction {input:q} --out {output:q} --quiet > {log:q} 2>&1"


rule summarize_metrics:
    input:
        [f"{RESULTS}/{run}/eval/{task}.csv" for run in RUNS for task in SCORED]
        + [f"{RESULTS}/{run}/eval/{task}.csv" for run in MAIN_GAN_RUNS for task in TASKS],
    output:
        report(
            f"{RESULTS}/summary/metrics.csv",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
    params:
        **stage_params("summarize"),
    log:
        f"{RESULTS}/logs/summarize_metrics.log",
    conda:
        ENV
    shell:
        "selfpanoptic summarize --out {output:q} {input:q} > {log:q} 2>&1"


rule summarize_ablation:
    input:
        [path for _, _, path in ablation_entries()],
    output:
        report(
            f"{RESULTS}/summary/ablation.csv",
            caption="../report/ablation.rst",
            category="Metrics",
        ),
    params:
        **stage_params("ablation"),
        tables=" ".join(f"--table {label} {seed} {shlex.quote(path)}" for label, seed, path in ablation_entries()),
    log:
        f"{RESULTS}/logs/summarize_ablation.log",
    conda:
        ENV
    shell:
        "selfpanoptic ablation {params.tables} --out {output:q} > {log:q} 2>&1"


rule fuse_panoptic:
    input:
        semantic=f"{RESULTS}/{{run}}/semantic/pred_target_{VAL_SPLIT}.h5",
        instance=f"{RESULTS}/{{run}}/instance/pred_target_{VAL_SPLIT}.h5",
        target=PANOPTIC_GT_INPUT,
    output:
        directory(f"{RESULTS}/{{run}}/panoptic"),
    params:
        **stage_params("fuse-panoptic", run_settings("panoptic")),
        gt_json=PANOPTIC_GT_JSON,
    log:
        f"{RESULTS}/logs/fuse_panoptic/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic fuse-panoptic {params.settings} --semantic {input.semantic:q}"
        " --instance {input.instance:q} --gt-json-file {params.gt_json:q} --out {output:q} --quiet > {log:q} 2>&1"


rule score_panoptic:
    input:
        prediction=f"{RESULTS}/{{run}}/panoptic",
        target=PANOPTIC_GT_INPUT,
    output:
        f"{RESULTS}/{{run}}/eval/panoptic.csv",
    params:
        **stage_params("score-panoptic"),
        run_name=run_name,
        gt_json=PANOPTIC_GT_JSON,
        gt_folder=PANOPTIC_GT_FOLDER,
    log:
        f"{RESULTS}/logs/score_panoptic/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic score-panoptic --prediction {input.prediction:q} --gt-json-file {params.gt_json:q}"
        " --gt-folder {params.gt_folder:q} --run {params.run_name} --out {output:q} > {log:q} 2>&1"


localrules:
    score_semantic,
    score_instance,
    export_semantic,
    export_instance,
    score_panoptic,
    summarize_metrics,
    summarize_ablation,


rule report:
    input:
        metrics=f"{RESULTS}/summary/metrics.csv",
        ablation=f"{RESULTS}/summary/ablation.csv",
        data=f"{RESULTS}/data/cache/target_{VAL_SPLIT}.h5",
        semantic=expand(f"{RESULTS}/{{run}}/semantic/pred_target_{VAL_SPLIT}.h5", run=RUNS),
        panoptic=[f"{RESULTS}/{run}/panoptic" for run in RUNS] if INSTANCES else [],
        generated=list(co_learning_figures().values()),
        selected=f"{RESULTS}/summary/selected_round.json" if AUTO_ROUNDS else [],
        **translation_outputs(),
        **gan_outputs(),
    output:
        page=report(f"{RESULTS}/summary/report.md", caption="../report/report.rst", category="Report"),
        by_round=report(
            f"{RESULTS}/summary/metrics_by_round.png",
            caption="../report/metrics_by_round.rst",
            category="Report",
        ),
        ablation=report(
            f"{RESULTS}/summary/ablation_by_round.png",
            caption="../report/ablation_by_round.rst",
            category="Report",
        ),
        per_class=report(
            f"{RESULTS}/summary/iou_per_class.png",
            caption="../report/iou_per_class.rst",
            category="Report",
        ),
        overlays=report(
            expand(f"{RESULTS}/summary/overlays_{{run}}.png", run=RUNS),
            caption="../report/overlays.rst",
            category="Qualitative",
        ),
    params:
        **stage_params("report", settings_option("report")),
        runs=report_runs,
        generated=" ".join(f"--generated {run} {shlex.quote(path)}" for run, path in co_learning_figures().items()),
        translation=lambda wildcards, input: (
            f"--translation {shlex.quote(input.fidelity)} {shlex.quote(input.grid)}" if TRANSLATED else ""
        ),
        selected=optional("--selected", "selected"),
        semantic_gan=lambda wildcards, input: (
            f"--semantic-gan {shlex.quote(input.gan_samples)} {shlex.quote(input.gan_inversions)}"
            + (f" --semantic-gan-fidelity {shlex.quote(input.gan_fidelity)}" if "gan_fidelity" in input.keys() else "")
            if GAN_RUNS else ""
        ),
        out_dir=lambda wildcards, output: os.path.dirname(output.page),
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        ENV
    shell:
        "selfpanoptic report {params.settings} --metrics {input.metrics:q} --ablation {input.ablation:q} --data {input.data:q}"
        " {params.runs} {params.generated} {params.translation} {params.selected} {params.semantic_gan}"
        " --out-dir {params.out_dir:q}"
        " > {log:q} 2>&1"
