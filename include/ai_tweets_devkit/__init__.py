"""What the tests and the benchmarks share to drive the real stack: child-process
environments, small registered models and a model server on a port of its own. Not part of
the pipeline (`ai_tweets` never imports it); it sits above it and uses its public functions."""
