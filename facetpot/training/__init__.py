"""Training beside the model (``facet train``), one concern per module:

* ``config``      YAML -> validated config with defaults
* ``presets``     starter configs for ``facet preset`` (``preset_configs/*.yaml``)
* ``data_prep``   input files -> on-disk caches (``facetpot.data``) -> train/valid split
* ``statistics``  E0 per element, average neighbour count, scale, fitted from the data
* ``model_setup`` the model trained: new, fine-tuned (elements added, layers frozen) or from a checkpoint
* ``finetune_energies`` a fine-tune's E0: the base model's, shifted by the fit of what it leaves in the data
* ``replay``, ``replay_structures`` replay for fine-tuning: structures (generated prototype crystals or given
  files) labelled by the base model itself, mixed into every epoch
* ``loss``        predictions, loss terms, error metrics
* ``distributed`` torchrun: rank, world, process group, the summed data-parallel loss
* ``ema``, ``schedule`` parameter EMA, learning-rate schedules (and the run's progress, for ``loss.stage_two``)
* ``checkpoint``  checkpoints (resume), ``run_dir`` the output folder and its logs
* ``trainer``     the loop: steps, validation, model files

Not to be confused with the repository's top-level ``training/`` folder, which holds recipes: ready
configs (``training/*.yaml``) and their README.
"""
