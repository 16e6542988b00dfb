"""Policy files: YAML or JSON, strict, every error of a file reported at once.

::

    version: 1
    defaults: { prefix: prod }
    limiters:
      api:    { strategy: gcra, limit: 100, period: 1m, burst: 20 }
      search: { strategy: slidingWindow, limit: 50, period: 10s, buckets: 20 }

:func:`load_config` / :func:`load_config_file` return a :class:`PolicyConfig` or raise
:class:`PolicyConfigError`, whose ``issues`` (:class:`ConfigIssue`) each name the file, the policy, the
field, the bad value and what is allowed. Policy kinds live in :mod:`throttlekit.config.kinds`.
"""

from __future__ import annotations

from ._issues import ConfigIssue, PolicyConfigError
from ._loader import MAX_POLICY_NAME, load_config, load_config_file
from ._model import (
    ConcurrencyPolicy,
    DistributedConcurrencyPolicy,
    FairEscrowPolicy,
    FederatedFairEscrowPolicy,
    FederatedPolicy,
    FleetBudgetPolicy,
    Policy,
    PolicyConfig,
    RatePolicy,
    TokenBudgetPolicy,
    TwoTierPolicy,
)

__all__ = [
    "MAX_POLICY_NAME",
    "ConcurrencyPolicy",
    "ConfigIssue",
    "DistributedConcurrencyPolicy",
    "FairEscrowPolicy",
    "FederatedFairEscrowPolicy",
    "FederatedPolicy",
    "FleetBudgetPolicy",
    "Policy",
    "PolicyConfig",
    "PolicyConfigError",
    "RatePolicy",
    "TokenBudgetPolicy",
    "TwoTierPolicy",
    "load_config",
    "load_config_file",
]
