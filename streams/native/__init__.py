"""Compiled code of the per-line hot path (Cython, built with the package).

The domain (``streams/domain``) keeps the product's rules in plain Python; what runs
for every declaration line and nothing else lives here, as C, because a Python
bytecode a line costs the worker measurable throughput (bench figure 2). Each type
here is the storage and arithmetic of one domain type, which subclasses it and keeps
its meaning, names and documentation: ``kernel.YearCore`` is ``YearState``'s.

``make test`` and ``make demo`` build it (``pip install -e .``); a source tree used
without installing builds it with ``python setup.py build_ext --inplace``.
"""
