"""What the pipeline (`ai_tweets`) and the local stack (`localstack`) both stand on, in the
standard library only, so that the local stack runs before any environment is installed:
the configuration (`settings`), errors that say whether retrying helps (`errors`) and the
process helper (`processes`)."""
