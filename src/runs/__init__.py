"""The run folder: its file names, checkpoints, status, loggers, and evaluate-and-save."""
