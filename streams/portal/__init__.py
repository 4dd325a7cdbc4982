"""The purchaser portal (SPEC §11): a read-only web service in Dutch.

It follows ``ggz.provider-status.v1``, ``ggz.alerts.v1`` and ``ggz.departments.v1``
from the start (``follow``), keeps what it serves in memory (``model``), and renders
server-side HTML with SVG charts (``pages``, ``charts``, ``web``) plus the same data
as JSON under ``/api``. ``snapshot`` merges the status topic into one snapshot of the
cluster for ``claimwatch snapshot``.
"""
