"""The kafka room's tests share the pipeline's cluster fixture (a real broker)."""

from tests.pipeline.conftest import cluster

__all__ = ["cluster"]
