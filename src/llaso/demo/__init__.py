"""`llaso demo`: LLaSO-Nano trained and evaluated end to end on one CPU (`make demo`).

Modules, in the order a reader meets them:

* `profile`: the settings: `DemoProfile` (configs/demo/NAME.yaml: default, all, quick; typed) and `DemoOptions`
  (the command's flags); `DemoError`, a step that cannot run;
* `steps`: the pipeline, a list of `Step`s (check, weights, corpus, align, instruct, infer, eval) that
  `run_demo` runs in order, each leaving a done-marker so that a rerun continues where it stopped;
* `training`: the stage-2 subset and a training stage in a child process;
* `real_speech`: the LibriVox utterances of the pocketsphinx 5.1.1 source package as an ASR eval file;
* `report`: the targets and the summary (summary.md, report.html).

This package imports nothing heavy when it loads: the training child imports `training` first and must set
its thread count before torch loads.
"""
