"""Files: the model file format (``model_file``; turning names and files into models is ``facetpot.inference``'s
job), the format header every facetpot file carries (``format_header``), torch archives written atomically and
read safely (``torch_archive``), atomic writes of any file or folder (``atomic_write``), the check of a command's
output folder (``output_folder``), the structures named on a command line (files, folders, globs:
``structure_inputs``) and the sha256 of shipped files (``sha256``).

Nothing is imported here: ``facetpot.io.sha256`` and ``format_header`` stay free of torch (``facet --help``)."""
