"""The discobase benchmark: workloads on SimCord under a model of Discord's rate limits.

``python -m bench`` runs every workload on our discobase and on discobase 1.0.0 (the baseline,
installed into ``bench/.baseline-venv``); ``python -m bench --quick`` runs CI-sized workloads on
ours only. See ``docs/performance.md`` for the latest figures and :mod:`bench.model` for the model.
"""
