"""``facet distill``: a small Facet model trained on a teacher's labels of generated structures.

config (the YAML sections) -> generate (structures from seeds) -> label (the teacher, resumable parts)
-> report (counts, distributions) -> ``facet train`` on the labels; ``run.run_distill`` runs the stages.
"""
