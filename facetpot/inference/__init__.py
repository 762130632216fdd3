"""Models prepared to compute: where a model comes from, which backend it computes with, and what computes
with it.

* ``model_source``: a model object, a model file or a shipped model's name -> a ``FacetModel`` (``read_model``,
  ``resolve_model``), never changing a model passed in; ``load_model`` also chooses its backend.
* ``backend_choice``: the convolution backend a model computes with (``backend=``, else ``$FACETPOT_BACKEND``,
  the only place that reads it, else the model's own).
* ``prepare``: ``inference_model``, the one way a model is prepared for inference (device, dtype, backend,
  eval mode, frozen weights) on a copy of what it was given.
* ``calculator`` (``FacetCalculator``, ASE), ``committee`` (mean and spread of several models),
  ``single_points`` (``facetpot.predict``: batched single points of many structures).

Training, data, export and the command line load models through ``model_source`` and ``prepare``, never through
the ASE calculator (``tests/test_structure.py``).
"""
