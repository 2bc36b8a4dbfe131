"""Semi-discrete optimal transport solvers."""

from .newton import OTResult, solve_ot

__all__ = ["OTResult", "solve_ot"]
