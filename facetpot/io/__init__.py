"""Files: model files and every way a model is named (``model_file``), the format header every facetpot file
carries (``format_header``), torch archives written atomically and read safely (``torch_archive``), atomic
writes of any file or folder (``atomic_write``), the check of a command's output folder (``output_folder``) and
the sha256 of shipped files (``sha256``).

Nothing is imported here: ``facetpot.io.sha256`` and ``format_header`` stay free of torch (``facet --help``)."""
