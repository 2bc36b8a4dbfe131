"""The numerical studies behind ``rasterquant experiment``.

Each study is a function that computes its numbers, writes a CSV and a JSON (and PNG
pictures when matplotlib is installed) into ``out_dir`` when one is given, and returns
a :class:`StudyResult`:

- :func:`run_rates`: ``F_N``, the energy of the barycenters after one uniform Lloyd
  step, and the minimum separation against ``N``, with log-log slopes;
- :func:`run_unstable`: uniform Lloyd from the regular grid on ``[-pi, pi]^2``;
- :func:`run_limits`: uniform Lloyd to convergence from random clouds;
- :func:`run_compare`: classic against uniform Lloyd from the same start.

These reproduce the studies of Mérigot, Santambrogio and Sarrazin, "Non-asymptotic
convergence bounds for Wasserstein approximation using point clouds", NeurIPS 2021.
"""

from ._common import StudyResult
from .compare import run_compare
from .limits import run_limits
from .rates import run_rates
from .unstable import run_unstable

STUDIES = {
    "rates": run_rates,
    "unstable": run_unstable,
    "limits": run_limits,
    "compare": run_compare,
}

__all__ = [
    "STUDIES",
    "StudyResult",
    "run_compare",
    "run_limits",
    "run_rates",
    "run_unstable",
]
