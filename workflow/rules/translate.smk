# Label-to-image translation (mixing.translated > 0): a SPADE translator learns the target train
# images from a round's label maps of them, renders every mixed-source label map in the target's
# look (a dataset in the sources' own layouts, cached like the source), and the re-segmentation
# of that translated source scores its label fidelity. The run `translated` (pretrain.smk) trains
# round 0's models on the mix. Outputs under results/translation/ and results/data/.


if TRANSLATED:

    rule train_translator:
        input:
            images=f"{RESULTS}/data/cache/target_{TRAIN_SPLIT}.h5",
            labels=translation_labels,
        output:
            f"{RESULTS}/translation/translator.pt",
        params:
            # what the translator is, not where it is used: selftrain_from, samples, batch_size rerun nothing here
            **stage_params(
                "train-translator",
                settings_option("translation", ["labels_from", "labels", "generator", "discriminator", "loss", "train"]),
            ),
            labels=optional("--labels", "labels"),
            work_dir=f"{RESULTS}/translation/train",
            device=config["device"],
        log:
            f"{RESULTS}/logs/train_translator.log",
        threads: job_threads("train")
        resources:
            **job_resources("train"),
        conda:
            ENV
        shell:
            "selfpanoptic train-translator {params.settings} --images {input.images:q} {params.labels}"
            " --out {output:q} --work-dir {params.work_dir:q}"
            " --data-workers {resources.data_workers} --processes {resources.processes} --device {params.device} --threads {threads}"
            " --desc 'train translator' > {log:q} 2>&1"

    rule translate_source:
        input:
            translator=f"{RESULTS}/translation/translator.pt",
            source=f"{RESULTS}/data/cache/source.h5",
            manifest=f"{RESULTS}/data/mixed_source.csv",
        output:
            folder=directory(f"{RESULTS}/data/translated"),
            manifest=f"{RESULTS}/data/translated_source.csv",
        params:
            **stage_params("translate-source", settings_option("translation", ["batch_size", "train"])),
            device=config["device"],
        log:
            f"{RESULTS}/logs/translate_source.log",
        threads: job_threads("predict")
        resources:
            **job_resources("predict"),
        conda:
            ENV
        shell:
            "selfpanoptic translate-source {params.settings} --translator {input.translator:q}"
            " --source {input.source:q} --manifest {input.manifest:q} --out {output.folder:q}"
            " --out-manifest {output.manifest:q} --device {params.device} --threads {threads} --quiet > {log:q} 2>&1"

    rule label_fidelity:
        input:
            model=f"{RESULTS}/{TRANSLATION_RUN}/semantic/model.pt",
            oracle=f"{RESULTS}/oracle/semantic/model.pt" if ORACLE else [],
            source=f"{RESULTS}/data/cache/source.h5",
            translated=f"{RESULTS}/data/cache/translated_source.h5",
        output:
            table=report(
                f"{RESULTS}/translation/fidelity.csv",
                caption="../report/translation.rst",
                category="Translation",
            ),
            grid=report(
                f"{RESULTS}/translation/samples.png",
                caption="../report/translation.rst",
                category="Translation",
            ),
        params:
            **stage_params("label-fidelity", settings_option("translation", ["batch_size", "samples"])),
            oracle=optional("--oracle-model", "oracle"),
            device=config["device"],
        log:
            f"{RESULTS}/logs/label_fidelity.log",
        threads: job_threads("predict")
        resources:
            **job_resources("predict"),
        conda:
            ENV
        shell:
            "selfpanoptic label-fidelity {params.settings} --model {input.model:q} {params.oracle} --source {input.source:q}"
            " --translated {input.translated:q} --out {output.table:q} --grid {output.grid:q}"
            " --device {params.device} --threads {threads} --quiet > {log:q} 2>&1"
