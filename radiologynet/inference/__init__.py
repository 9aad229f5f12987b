"""Using a trained model: predictions, embeddings and export.

Floor 4 (beside :mod:`radiologynet.train`): it builds on the zoo core, the readers and
transforms, and the data sources, and is used by the analysis layer and the CLI.
"""
