"""The alert rules of SPEC §5: one module a rule, collected by the registry.

To add a rule, see docs/adding-a-rule.md. ``RULES`` is every rule in evaluation
order; ``rule(name)`` one of them. ``peer_mean`` and ``adhd_growth`` are the one
definition of those figures, used wherever they are shown.
"""

from streams.domain.rules.adhd_growth import growth as adhd_growth
from streams.domain.rules.base import Rule, Tally, Tick
from streams.domain.rules.group_share_low import peer_mean
from streams.domain.rules.registry import RULES, message, register, rule, unregister

__all__ = [
    "RULES",
    "Rule",
    "Tally",
    "Tick",
    "adhd_growth",
    "message",
    "peer_mean",
    "register",
    "rule",
    "unregister",
]
