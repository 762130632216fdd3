"""What users run with a model: relaxations of many structures (``facet relax``), and more to come
(MD, equations of state, elastic constants, phonons)."""
