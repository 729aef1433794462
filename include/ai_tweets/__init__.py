"""AI tweets: find AI tweets with links in a live tweet stream (capture, prepare, annotate,
train, classify). Every stage is a plain function here; DAGs, Spark jobs and the CLI call
them."""

__version__ = "0.1.0"
