# SemanticGAN (semantic_gan.enabled): per seed, a generator of images and label maps learns from
# the pairs of semantic_gan.pairs, an encoder learns to map images into its W+ styles, and the
# target images are read out twice: run gan_encoder (the encoder alone) and run gan_inversion
# (with test-time inversion). Their predictions are ordinary semantic predictions, so the rules of
# evaluate.smk score, export and fuse them (with the instances of semantic_gan.labels_from's run).
# Sampled labelled pairs form a GTA5-layout dataset whose label fidelity the oracle scores; with
# semantic_gan.source_share > 0 it is indexed and cached like a source, and the run gan_samples
# (pretrain.smk) trains round 0's semantic model with that share of its draws from it.


if GAN_RUNS:

    GAN_FOLDER = f"{{gan,{folder_pattern(GAN_FOLDERS)}}}"
    GAN_RUN = f"{{run,{folder_pattern(READOUT_RUNS)}}}"
    # what the generator is: inversion, sampling and the grids rerun nothing here
    GAN_PARTS = ("pairs", "labels_from", "labels", "target_labels", "generator", "discriminator", "loss", "train")

    ruleorder: predict_semantic_gan > predict_semantic

    rule train_semantic_gan:
        input:
            unpack(gan_data_inputs),
        output:
            f"{RESULTS}/{GAN_FOLDER}/generator.pt",
        params:
            **stage_params("train-semantic-gan", gan_settings(*GAN_PARTS)),
            data=lambda wildcards, input: " ".join(f"--{key} {shlex.quote(path)}" for key, path in input.items()),
            work_dir=lambda wildcards: f"{RESULTS}/{wildcards.gan}/train_generator",
            device=config["device"],
        log:
            f"{RESULTS}/logs/train_semantic_gan/{{gan}}.log",
        threads: job_threads("train")
        resources:
            **job_resources("train"),
        conda:
            ENV
        shell:
            "selfpanoptic train-semantic-gan {params.settings} {params.data} --out {output:q}"
            " --work-dir {params.work_dir:q} --processes {resources.processes} --device {params.device}"
            " --threads {threads} --desc 'train semantic gan [{wildcards.gan}]' > {log:q} 2>&1"

    rule train_gan_encoder:
        input:
            unpack(gan_data_inputs),
            generator=f"{RESULTS}/{{gan}}/generator.pt",
        output:
            f"{RESULTS}/{GAN_FOLDER}/encoder.pt",
        params:
            **stage_params("train-gan-encoder", gan_settings(*GAN_PARTS, "encoder")),
            data=lambda wildcards, input: " ".join(f"--{key} {shlex.quote(path)}" for key, path in input.items()
                                                   if key != "generator"),
            work_dir=lambda wildcards: f"{RESULTS}/{wildcards.gan}/train_encoder",
            device=config["device"],
        log:
            f"{RESULTS}/logs/train_gan_encoder/{{gan}}.log",
        threads: job_threads("train")
        resources:
            **job_resources("train"),
        conda:
            ENV
        shell:
            "selfpanoptic train-gan-encoder {params.settings} --generator {input.generator:q} {params.data}"
            " --out {output:q} --work-dir {params.work_dir:q} --device {params.device} --threads {threads}"
            " --desc 'train gan encoder [{wildcards.gan}]' > {log:q} 2>&1"

    rule predict_semantic_gan:
        input:
            generator=lambda wildcards: f"{RESULTS}/{GAN_RUNS[wildcards.run]['gan']}/generator.pt",
            encoder=lambda wildcards: f"{RESULTS}/{GAN_RUNS[wildcards.run]['gan']}/encoder.pt",
            data=f"{RESULTS}/data/cache/target_{{split}}.h5",
            full_resolution=lambda wildcards: f"{RESULTS}/data/index/target_{VAL_SPLIT}.csv" if wildcards.split == VAL_SPLIT else [],
        output:
            prediction=f"{RESULTS}/{GAN_RUN}/semantic/pred_target_{{split}}.h5",
            grid=f"{RESULTS}/{GAN_RUN}/semantic/readout_{{split}}.png",
        params:
            **stage_params("predict-semantic-gan", readout_settings),
            full_resolution=optional("--full-resolution", "full_resolution"),
            device=config["device"],
        log:
            f"{RESULTS}/logs/predict_semantic_gan/{{run}}_{{split}}.log",
        threads: job_threads("predict")
        resources:
            **job_resources("predict"),
        conda:
            ENV
        shell:
            "selfpanoptic predict-semantic-gan {params.settings} --generator {input.generator:q} --encoder {input.encoder:q}"
            " --data {input.data:q} {params.full_resolution} --out {output.prediction:q}"
            " --grid {output.grid:q} --device {params.device} --threads {threads} > {log:q} 2>&1"

    rule sample_semantic_gan:
        input:
            generator=f"{RESULTS}/{{gan}}/generator.pt",
            oracle=lambda wildcards: f"{RESULTS}/{gan_folder_run(wildcards.gan)['oracle']}/semantic/model.pt" if ORACLE else [],
            model=lambda wildcards: f"{RESULTS}/{gan_folder_run(wildcards.gan)['labels']}/semantic/model.pt",
        output:
            folder=directory(f"{RESULTS}/{GAN_FOLDER}/samples"),
            grid=f"{RESULTS}/{GAN_FOLDER}/samples.png",
            **({"table": f"{RESULTS}/{GAN_FOLDER}/fidelity.csv"} if ORACLE else {}),
        params:
            **stage_params("sample-semantic-gan", gan_settings("samples", "truncation", "grid", "train")),
            oracle=optional("--oracle-model", "oracle"),
            table=lambda wildcards, output: f"--table {shlex.quote(output.table)}" if ORACLE else "",
            device=config["device"],
        log:
            f"{RESULTS}/logs/sample_semantic_gan/{{gan}}.log",
        threads: job_threads("predict")
        resources:
            **job_resources("predict"),
        conda:
            ENV
        shell:
            "selfpanoptic sample-semantic-gan {params.settings} --generator {input.generator:q} {params.oracle}"
            " --model {input.model:q} --out {output.folder:q} --grid {output.grid:q} {params.table}"
            " --device {params.device} --threads {threads} --quiet > {log:q} 2>&1"

    rule index_gan_samples:
        input:
            f"{RESULTS}/{{gan}}/samples",
        output:
            f"{RESULTS}/{GAN_FOLDER}/samples_index.csv",
        params:
            **stage_params("index"),
        log:
            f"{RESULTS}/logs/index_gan_samples/{{gan}}.log",
        threads: job_threads("data")
        resources:
            **job_resources("data"),
        conda:
            ENV
        shell:
            "selfpanoptic index --name gan_samples --format gta5 --root {input:q} --unpaired error"
            " --size-mismatch error --out {output:q} --threads {threads} > {log:q} 2>&1"

    rule cache_gan_samples:
        input:
            f"{RESULTS}/{{gan}}/samples_index.csv",
        output:
            f"{RESULTS}/{GAN_FOLDER}/samples.h5",
        params:
            **stage_params("cache", settings_option("data")),
        log:
            f"{RESULTS}/logs/cache_gan_samples/{{gan}}.log",
        threads: job_threads("data")
        resources:
            **job_resources("data"),
        conda:
            ENV
        shell:
            "selfpanoptic cache {params.settings} --manifest {input:q} --out {output:q} --threads {threads} > {log:q} 2>&1"
