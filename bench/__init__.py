"""claimwatch benchmarks: figures and, above all, ratios against a Python floor.

Run ``python -m bench`` (see bench/README.md). Each stage lives in its own module:

- ``offline``: offline replay vs. a bare read + orjson-decode loop on the same file;
- ``streaming``: one Faust worker vs. a raw aiokafka consume + decode loop on the same topic;
- ``latency``: produce-to-alert latency of ceiling alerts at a steady input rate;

``history`` caches the generated input under var/bench/, ``report`` prints the table
and writes bench/results/latest.json.
"""
