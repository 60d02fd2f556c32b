"""Training jobs: prepared in the service, trained in a worker process, published as versions."""
