"""Analysis of faces over time: smile amplitude signals, episodes, D-Markers, authenticity.

The numerical core (``dynamics``, ``dmarkers``, ``authenticity``) is pure numpy and calls
no model; the video analyzer feeds it tracked, smoothed Face Mesh landmarks. Submodules
are imported explicitly (``from duchenne.analysis.episodes import find_episodes``) so that
importing this package stays free of side effects and cheap.
"""
