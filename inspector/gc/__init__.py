"""Garbage collection of cache tags: policy, inventory, a pure plan, and its safe execution."""

from inspector.gc.execute import RepositoryReport, execute_plan
from inspector.gc.inventory import Inventory, collect_inventory
from inspector.gc.plan import RepositoryPlan, plan_repository
from inspector.gc.policy import RepositoryPolicy, Rules, Settings, load_policy

__all__ = [
    "Inventory",
    "RepositoryPlan",
    "RepositoryPolicy",
    "RepositoryReport",
    "Rules",
    "Settings",
    "collect_inventory",
    "execute_plan",
    "load_policy",
    "plan_repository",
]
