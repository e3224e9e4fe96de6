# Scores on the target val split, and the summary table of every run.


rule evaluate_semantic:
    input:
        prediction=f"{RESULTS}/{{run}}/semantic/pred_target_{VAL_SPLIT}.h5",
        data=f"{RESULTS}/data/cache/target_{VAL_SPLIT}.h5",
    output:
        f"{RESULTS}/{{run}}/eval/semantic.csv",
    params:
        round=round_label,
    log:
        f"{RESULTS}/logs/evaluate_semantic/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic evaluate-semantic --prediction {input.prediction:q} --data {input.data:q}"
        " --round {params.round} --out {output:q} --quiet > {log:q} 2>&1"


rule evaluate_instance:
    input:
        prediction=f"{RESULTS}/{{run}}/instance/pred_target_{VAL_SPLIT}.h5",
        data=f"{RESULTS}/data/cache/target_{VAL_SPLIT}.h5",
    output:
        f"{RESULTS}/{{run}}/eval/instance.csv",
    params:
        round=round_label,
        settings=stage_settings("evaluation"),
    log:
        f"{RESULTS}/logs/evaluate_instance/{{run}}.log",
    conda:
        ENV
    shell:
        "selfpanoptic evaluate-instance --settings {params.settings:q} --prediction {input.prediction:q}"
        " --data {input.data:q} --round {params.round} --out {output:q} --quiet > {log:q} 2>&1"


rule summarize_metrics:
    input:
        metric_tables(),
    output:
        report(
            f"{RESULTS}/summary/metrics.csv",
            caption="../report/metrics.rst",
            category="Metrics",
        ),
    log:
        f"{RESULTS}/logs/summarize_metrics.log",
    conda:
        ENV
    shell:
        "selfpanoptic summarize --out {output:q} {input:q} > {log:q} 2>&1"


localrules:
    evaluate_semantic,
    evaluate_instance,
    summarize_metrics,
