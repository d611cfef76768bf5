"""Names for a cache's steps: from a Dockerfile (aligned to the records), from base images and from provenance."""

from inspector.cache.naming.align import DockerfileSource, label_report
from inspector.cache.naming.dockerfile import BuildPlan, plan_dockerfile

__all__ = [
    "BuildPlan",
    "DockerfileSource",
    "label_report",
    "plan_dockerfile",
]
