"""Stand-alone tools on the training library: ``python -m training.tools.<name>``."""
