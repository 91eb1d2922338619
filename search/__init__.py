"""Searches that turn calibration runs into Pareto fronts of plans, and the evaluation they share."""

from accel.search.front import ParetoFront

__all__ = ["ParetoFront"]
