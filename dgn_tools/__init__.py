"""dgn_tools: what sits above both backends.

- :mod:`dgn_tools.cli`: the ``dgn`` command line;
- :mod:`dgn_tools.checks`: the numerical checks of every lemma and theorem (``dgn check``,
  ``proofs_checks/``), which compare the exact and the fast path;
- :mod:`dgn_tools.plotting`: figures (matplotlib, imported on first use).

Nothing in ``dgn_core``, ``verified_dgn`` or ``fastpath`` imports this package.
"""
