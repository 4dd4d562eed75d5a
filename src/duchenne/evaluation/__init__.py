"""Evaluation: numpy-only metrics with bootstrap CIs, and optional matplotlib figures.

``duchenne.evaluation.metrics`` needs only numpy. ``duchenne.evaluation.plots`` imports
matplotlib only when a plot function is called (``pip install 'duchenne[plot]'``).
``duchenne.evaluation.runner`` evaluates a smile model on a labelled dataset. Import from
those modules (``from duchenne.evaluation.metrics import roc_auc``); this package re-exports
nothing, so importing it stays cheap.
"""
