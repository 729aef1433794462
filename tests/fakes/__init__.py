"""In-process fakes of external services, so unit tests never touch the network."""
