"""Crystal orientations of grains: random, textured, read from files; dual phases.

Conventions (fixed here, used by every writer of rasterquant)
-------------------------------------------------------------
- **Bunge Euler angles** ``(phi1, Phi, phi2)`` in degrees, ZXZ. They define the
  *passive* orientation matrix ``g = Z(phi2) X(Phi) Z(phi1)`` that takes vector
  components in the sample frame (RD, TD, ND) to components in the crystal frame
  (Bunge 1982): ``v_crystal = g v_sample``. This is the matrix DAMASK's
  ``Rotation.as_matrix()`` returns.
- **scipy** (``scipy.spatial.transform.Rotation``) rotations are *active*. The
  orientation of a grain is stored as the active rotation ``R`` that carries the sample
  axes onto the crystal axes, ``R = Rotation.from_euler("ZXZ", [phi1, Phi, phi2],
  degrees=True)``: upper-case ``"ZXZ"`` means *intrinsic* rotations in scipy (about the
  moving axes; lower-case ``"zxz"`` would be extrinsic and give another rotation).
  Then ``R.as_matrix() = g.T`` maps crystal components to sample components
  (``v_sample = R v_crystal``, the "crystal to sample" matrix of MTEX), and
  ``g = R.inv().as_matrix()``.
- **Quaternions** are scalar-first ``(w, x, y, z)``, unit, with ``w >= 0`` (for
  ``w = 0`` the first non-zero of ``x, y, z`` is positive). They are the quaternion of
  scipy's ``R`` reordered to scalar-first. The numbers coincide with DAMASK's
  quaternion of the same Bunge angles (DAMASK's passive convention with ``P = -1``
  conjugates twice), so they go into ``material.yaml`` as they are; the tests check this
  against ``damask.Rotation.from_Euler_angles`` when DAMASK is installed.
- All conversions go through scipy's ``Rotation``; nothing here is a hand-written
  rotation formula. Euler angles are returned with ``phi1, phi2`` in ``[0, 360)`` and
  ``Phi`` in ``[0, 180]``; at ``Phi = 0`` (gimbal lock) scipy puts the whole rotation
  in ``phi1`` and ``phi2 = 0``.
- Cubic crystal symmetry is the rotation group ``O`` (24 proper rotations), built with
  ``Rotation.create_group("O")``.

Misorientation. The misorientation of grains ``a`` and ``b`` is ``R_a^-1 R_b``; with
crystal symmetry, its angle is the smallest angle of ``S_i R_a^-1 R_b S_j`` over the
group, which equals the smallest angle of ``S R_a^-1 R_b`` over the 24 ``S``
(conjugate rotations share their angle), at most 62.8 degrees for cubic symmetry.

References
----------
.. [1] H.-J. Bunge, Texture Analysis in Materials Science, Butterworths, 1982.
.. [2] J. Hirsch, K. Lücke, "Mechanism of deformation and development of rolling
   textures in polycrystalline f.c.c. metals", Acta Metall. 36 (1988) 2863-2882.
.. [3] F. J. Humphreys, M. Hatherly, Recrystallization and Related Annealing
   Phenomena, 2nd ed., Elsevier, 2004 (chapter 3, deformation textures).
.. [4] J. K. Mackenzie, "Second paper on statistics associated with the random
   disorientation of cubes", Biometrika 45 (1958) 229-240.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import RasterquantWarning

__all__ = [
    "SYMMETRIES",
    "TEXTURE_COMPONENTS",
    "Orientations",
    "PhaseVolumes",
    "assign_orientations",
    "cubic_symmetry",
    "dual_phase_volumes",
    "misorientation_angles",
    "parse_texture",
    "random_orientations",
    "read_orientations",
    "texture_orientations",
]

#: ideal fcc rolling/recrystallisation texture components as ``(hkl)[uvw]``: the
#: crystal plane parallel to the sheet (ND) and the crystal direction parallel to
#: rolling (RD). Their Bunge angles (tests check them) are Cube (0, 0, 0), Goss
#: (0, 45, 0), Brass (35.26, 45, 0), Copper (90, 35.26, 45), S (58.98, 36.70, 63.43).
TEXTURE_COMPONENTS = {
    "cube": ((0, 0, 1), (1, 0, 0)),
    "goss": ((0, 1, 1), (1, 0, 0)),
    "brass": ((0, 1, 1), (2, -1, 1)),
    "copper": ((1, 1, 2), (-1, -1, 1)),
    "s": ((2, 1, 3), (-3, -6, 4)),
}

#: crystal symmetries understood by the misorientation functions
SYMMETRIES = ("cubic", "none")

#: numbers of a quaternion that is accepted as unit and renormalised
_UNIT_TOL = 1e-3

#: relative miss of the size ratio above which dual_phase_volumes warns
_RATIO_WARN = 0.1

#: independent random streams (mixed into the user's seed)
_STREAM_RANDOM = 11
_STREAM_TEXTURE = 12
_STREAM_PHASES = 13


def _rng(seed, stream):
    """Return the generator of ``stream`` for ``seed`` (int, ints or Generator)."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    parts = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    for v in parts:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"seed must be an integer or None, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"seed must be >= 0, got {v}")
    return np.random.default_rng([*(int(v) for v in parts), stream])


# ----------------------------------------------------------------------------------
# the Orientations record


def _canonical(q):
    """Normalise (N, 4) scalar-first quaternions and make w >= 0 (same rotations)."""
    q = np.array(q, dtype=np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    flip = q[:, 0] < 0
    # w == 0: make the first non-zero vector component positive
    zero = q[:, 0] == 0
    if zero.any():
        v = q[zero, 1:]
        first = v[np.arange(len(v)), np.argmax(v != 0, axis=1)]
        flip[np.flatnonzero(zero)] = first < 0
    q[flip] *= -1.0
    return np.ascontiguousarray(q)


def _euler_from_rotation(rot):
    """Bunge angles in degrees of scipy rotations (phi1, phi2 in [0, 360))."""
    with warnings.catch_warnings():
        # Phi = 0 or 180: scipy warns and puts the rotation into phi1 (exact anyway)
        warnings.filterwarnings("ignore", message=".*[Gg]imbal lock.*")
        e = np.atleast_2d(rot.as_euler("ZXZ", degrees=True))
    e[:, 0] = np.mod(e[:, 0], 360.0)
    e[:, 2] = np.mod(e[:, 2], 360.0)
    e[np.isclose(e, 360.0, rtol=0, atol=1e-12)] = 0.0
    return np.ascontiguousarray(e)


def _phases(phases, n):
    if phases is None:
        return np.zeros(n, np.int64)
    ph = np.asarray(phases)
    if ph.shape != (n,) or not np.issubdtype(ph.dtype, np.integer) or (ph < 0).any():
        raise ValueError(
            f"phases must be {n} non-negative integers (one per grain), got shape "
            f"{ph.shape} dtype {ph.dtype}"
        )
    return ph.astype(np.int64)


@dataclass(frozen=True)
class Orientations:
    """Crystal orientation and phase of each grain.

    Use the constructors :meth:`from_quaternions`, :meth:`from_euler` and
    :meth:`from_rotation` (they validate and fill both representations), or the
    samplers :func:`random_orientations`, :func:`texture_orientations`,
    :func:`assign_orientations` and :func:`read_orientations`.

    Attributes
    ----------
    quaternions : (N, 4) ndarray of float64
        Unit quaternions, scalar-first ``(w, x, y, z)`` with ``w >= 0``: the active
        rotation taking the sample axes onto the crystal axes (module docstring).
    euler_deg : (N, 3) ndarray of float64
        Bunge angles ``(phi1, Phi, phi2)`` in degrees of the same orientations.
    phases : (N,) ndarray of int64
        Phase of each grain (0-based).
    description : str
        How the orientations were made (for sidecars).
    """

    quaternions: np.ndarray
    euler_deg: np.ndarray
    phases: np.ndarray
    description: str = field(default="", compare=False)

    def __post_init__(self):
        q, e, p = self.quaternions, self.euler_deg, self.phases
        n = len(q)
        if (
            np.shape(q) != (n, 4)
            or np.shape(e) != (n, 3)
            or np.shape(p) != (n,)
            or not np.isfinite(q).all()
        ):
            raise ValueError(
                f"Orientations needs quaternions (N, 4), euler_deg (N, 3) and phases "
                f"(N,), got shapes {np.shape(q)}, {np.shape(e)}, {np.shape(p)}"
            )

    # constructors -------------------------------------------------------------

    @classmethod
    def from_rotation(cls, rotation, phases=None, *, description=""):
        """Orientations from scipy rotations (sample axes -> crystal axes, active).

        Parameters
        ----------
        rotation : scipy.spatial.transform.Rotation
            ``N`` rotations (a single rotation counts as ``N = 1``).
        phases : (N,) array_like of int, optional
            Phase of each grain (default 0).
        description : str
            Free text for sidecars.

        Returns
        -------
        Orientations
        """
        if not isinstance(rotation, Rotation):
            raise TypeError(
                f"rotation must be a scipy Rotation, got {type(rotation).__name__}"
            )
        q = np.atleast_2d(rotation.as_quat())[:, [3, 0, 1, 2]]
        q = _canonical(q)
        rot = Rotation.from_quat(q[:, [1, 2, 3, 0]])
        return cls(q, _euler_from_rotation(rot), _phases(phases, len(q)), description)

    @classmethod
    def from_quaternions(cls, quaternions, phases=None, *, description=""):
        """Orientations from scalar-first unit quaternions ``(w, x, y, z)``.

        Parameters
        ----------
        quaternions : (N, 4) array_like of float
            Unit quaternions, scalar first (either sign; stored with ``w >= 0``).
            Norms within 1e-3 of 1 are renormalised.
        phases : (N,) array_like of int, optional
            Phase of each grain (default 0).
        description : str
            Free text for sidecars.

        Returns
        -------
        Orientations

        Raises
        ------
        ValueError
            For a wrong shape, NaN/inf, or a row that is not a unit quaternion.
        """
        q = np.array(quaternions, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4 or len(q) == 0:
            raise ValueError(
                f"quaternions must have shape (N, 4) with N >= 1 (w, x, y, z), got "
                f"{q.shape}"
            )
        if not np.isfinite(q).all():
            raise ValueError("quaternions contains NaN or inf; expected finite values")
        norm = np.linalg.norm(q, axis=1)
        bad = np.flatnonzero(np.abs(norm - 1.0) > _UNIT_TOL)
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"quaternions[{i}] = {q[i].tolist()} has norm {norm[i]:.6g}; expected "
                f"a unit quaternion (norm within {_UNIT_TOL} of 1)"
            )
        rot = Rotation.from_quat(q[:, [1, 2, 3, 0]])
        return cls.from_rotation(rot, phases, description=description)

    @classmethod
    def from_euler(cls, euler_deg, phases=None, *, description=""):
        """Orientations from Bunge Euler angles ``(phi1, Phi, phi2)`` in degrees.

        Parameters
        ----------
        euler_deg : (N, 3) array_like of float
            Bunge angles in degrees (ZXZ, passive; see the module docstring).
        phases : (N,) array_like of int, optional
            Phase of each grain (default 0).
        description : str
            Free text for sidecars.

        Returns
        -------
        Orientations

        Examples
        --------
        >>> o = Orientations.from_euler([[0.0, 45.0, 0.0]])  # Goss
        >>> o.quaternions.round(6).tolist()
        [[0.92388, 0.382683, 0.0, 0.0]]
        """
        e = np.array(euler_deg, dtype=np.float64)
        if e.ndim != 2 or e.shape[1] != 3 or len(e) == 0:
            raise ValueError(
                f"euler_deg must have shape (N, 3) with N >= 1 (phi1, Phi, phi2 in "
                f"degrees), got {e.shape}"
            )
        if not np.isfinite(e).all():
            raise ValueError("euler_deg contains NaN or inf; expected finite angles")
        rot = Rotation.from_euler("ZXZ", e, degrees=True)
        return cls.from_rotation(rot, phases, description=description)

    # views --------------------------------------------------------------------

    @property
    def n_grains(self) -> int:
        """Number of grains ``N``."""
        return len(self.quaternions)

    def __len__(self) -> int:
        return len(self.quaternions)

    def as_rotation(self) -> Rotation:
        """Return scipy rotations (active, sample axes -> crystal axes)."""
        return Rotation.from_quat(self.quaternions[:, [1, 2, 3, 0]])

    def crystal_to_sample(self) -> np.ndarray:
        """Return ``(N, 3, 3)`` matrices with ``v_sample = M v_crystal`` (``g.T``)."""
        return self.as_rotation().as_matrix()

    def sample_to_crystal(self) -> np.ndarray:
        """Return Bunge's ``g``, ``(N, 3, 3)``, with ``v_crystal = g v_sample``."""
        return self.as_rotation().inv().as_matrix()

    def with_phases(self, phases) -> Orientations:
        """Return a copy with other phases."""
        return Orientations(
            self.quaternions,
            self.euler_deg,
            _phases(phases, self.n_grains),
            self.description,
        )


# ----------------------------------------------------------------------------------
# sampling


def _check_count(n, name="n_grains"):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def random_orientations(n_grains, *, seed=None, phases=None) -> Orientations:
    """Orientations drawn uniformly on SO(3) (Haar measure), seeded.

    Parameters
    ----------
    n_grains : int
        Number of orientations.
    seed : int, optional
        Random seed (the same seed gives the same orientations).
    phases : (N,) array_like of int, optional
        Phase of each grain.

    Returns
    -------
    Orientations

    Notes
    -----
    ``Rotation.random`` normalises four standard normal numbers, which is uniform on
    the unit quaternions and hence on SO(3). The misorientation angle of a uniform
    rotation from any fixed one has density ``(1 - cos t) / pi`` on ``[0, pi]``.

    Examples
    --------
    >>> random_orientations(3, seed=1).quaternions.shape
    (3, 4)
    """
    n = _check_count(n_grains)
    rng = _rng(seed, _STREAM_RANDOM)
    rot = Rotation.random(n, rng)
    return Orientations.from_rotation(rot, phases, description="random")


def cubic_symmetry() -> Rotation:
    """Return the 24 proper rotations of the cubic group ``O`` (identity first)."""
    group = Rotation.create_group("O")
    order = np.argsort(-np.abs(group.as_quat()[:, 3]), kind="stable")
    return group[order]


def _symmetry_ops(symmetry):
    if symmetry == "cubic":
        return cubic_symmetry()
    if symmetry in ("none", None):
        return Rotation.identity(1)
    raise ValueError(
        f"symmetry must be one of {', '.join(SYMMETRIES)}, got {symmetry!r}"
    )


def parse_texture(spec) -> dict:
    """Parse a texture mix like ``"cube:0.5,goss:0.3"`` into fractions per component.

    Parameters
    ----------
    spec : str or dict
        Comma-separated ``NAME`` or ``NAME:WEIGHT`` with ``NAME`` one of
        ``cube, goss, brass, copper, s, random``. Weights are fractions of grains in
        ``[0, 1]`` summing to at most 1. Names without a weight share what the
        weighted ones leave equally; if nothing is left unweighted and the weights sum
        below 1, the rest is ``random``. A dict ``{name: weight}`` is taken as given.

    Returns
    -------
    dict of str to float
        Fractions summing to 1 (``"random"`` included when non-zero).

    Raises
    ------
    ValueError
        For an unknown name, a malformed or negative weight, or weights above 1.

    Examples
    --------
    >>> parse_texture("cube:0.5,goss:0.3")
    {'cube': 0.5, 'goss': 0.3, 'random': 0.2}
    >>> parse_texture("brass,copper")
    {'brass': 0.5, 'copper': 0.5}
    """
    names = (*TEXTURE_COMPONENTS, "random")
    if isinstance(spec, dict):
        items = [(str(k).strip().lower(), v) for k, v in spec.items()]
    elif isinstance(spec, str):
        items = []
        for part in spec.split(","):
            if not part.strip():
                continue
            name, sep, w = part.partition(":")
            items.append((name.strip().lower(), w.strip() if sep else None))
    else:
        raise TypeError(f"texture must be a str or dict, got {type(spec).__name__}")
    if not items:
        raise ValueError(
            f"texture {spec!r} is empty; expected e.g. 'cube:0.5,goss:0.5' with "
            f"components {', '.join(names)}"
        )
    out, unweighted = {}, []
    for name, w in items:
        if name not in names:
            raise ValueError(
                f"texture component {name!r} in {spec!r} is unknown; expected one of "
                f"{', '.join(names)}"
            )
        if name in out or name in unweighted:
            raise ValueError(f"texture component {name!r} is given twice in {spec!r}")
        if w is None:
            unweighted.append(name)
            continue
        try:
            value = float(w)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise ValueError(
                f"texture weight of {name!r} in {spec!r} is {w!r}; expected a "
                "fraction in [0, 1]"
            )
        out[name] = value
    total = sum(out.values())
    if total > 1 + 1e-9:
        raise ValueError(
            f"texture weights in {spec!r} sum to {total:.6g}; expected at most 1 "
            "(the rest is random)"
        )
    rest = max(0.0, 1.0 - total)
    for name in unweighted:
        out[name] = rest / len(unweighted)
    if not unweighted and rest > 1e-12:
        out["random"] = out.get("random", 0.0) + rest
    return {k: round(v, 12) for k, v in out.items() if v > 0} or {"random": 1.0}


def _component_rotation(name):
    """Active rotation (sample -> crystal axes) of an ideal component, exact."""
    hkl, uvw = (np.asarray(v, dtype=np.float64) for v in TEXTURE_COMPONENTS[name])
    nd = hkl / np.linalg.norm(hkl)
    rd = uvw / np.linalg.norm(uvw)
    td = np.cross(nd, rd)
    # rows RD, TD, ND in crystal components: the crystal -> sample matrix g.T
    return Rotation.from_matrix(np.stack([rd, td, nd]))


#: orthorhombic sample symmetry (rolling): identity and 180 degrees about RD, TD, ND
def _sample_symmetry(kind):
    if kind == "orthorhombic":
        return Rotation.from_rotvec(
            np.array([[0, 0, 0], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi]])
        )
    if kind in ("none", None):
        return Rotation.identity(1)
    raise ValueError(f"sample_symmetry must be 'orthorhombic' or 'none', got {kind!r}")


def _counts(fractions, n):
    """Largest-remainder rounding of ``fractions * n`` to integers summing to n."""
    raw = np.asarray(fractions) * n
    base = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - base), kind="stable")
    base[order[: n - base.sum()]] += 1
    return base


def texture_orientations(
    n_grains,
    texture,
    *,
    scatter=5.0,
    seed=None,
    sample_symmetry="orthorhombic",
    phases=None,
    volumes=None,
) -> Orientations:
    """Orientations scattered about ideal texture components (with a random part).

    Parameters
    ----------
    n_grains : int
        Number of orientations.
    texture : str or dict
        Mix of components, see :func:`parse_texture` (``"cube"``,
        ``"cube:0.5,goss:0.5"``, ``"copper:0.4,s:0.4"`` (rest random), ``"random"``).
    scatter : float
        Mean misorientation angle in degrees from the ideal component, ``0 <= scatter
        <= 60`` (see Notes).
    seed : int, optional
        Random seed.
    sample_symmetry : {"orthorhombic", "none"}
        "orthorhombic" (rolled sheet) draws each grain's ideal orientation uniformly
        among the component's variants ``S R`` under 180-degree rotations ``S`` about
        RD, TD and ND (two variants of Brass and Copper, four of S; Cube and Goss are
        unchanged up to crystal symmetry); "none" uses the tabulated variant only.
    phases : (N,) array_like of int, optional
        Phase of each grain.
    volumes : (N,) array_like of float, optional
        Grain volumes: the fractions of the mix are then volume fractions (else
        fractions of the number of grains).

    Returns
    -------
    Orientations
        Grains are given components in random order, in the fractions of the mix:
        by number, rounded to whole grains by largest remainders; by volume, each
        grain (in a random order) goes to the component whose share of the
        cumulative volume holds the grain's midpoint, so every component's volume
        fraction is met to within half of the largest grain.

    Raises
    ------
    ValueError
        For a bad texture, count or scatter.

    Notes
    -----
    Components (Bunge angles in degrees; Hirsch and Lücke [2]_, Humphreys and
    Hatherly [3]_):

    ======== ================= ======================
    Name     (hkl)[uvw]        (phi1, Phi, phi2)
    ======== ================= ======================
    Cube     (001)[100]        (0, 0, 0)
    Goss     (011)[100]        (0, 45, 0)
    Brass    (011)[2-11]       (35.26, 45, 0)
    Copper   (112)[-1-11]      (90, 35.26, 45)
    S        (213)[-3-64]      (58.98, 36.70, 63.43)
    ======== ================= ======================

    Scatter: each grain's orientation is ``D R`` with ``R`` the ideal orientation and
    ``D`` a rotation whose rotation vector is isotropic Gaussian with standard
    deviation ``s = scatter * sqrt(pi / 8)`` (radians) per component. The
    misorientation angle ``|rotvec|`` then follows a Maxwell distribution of scale
    ``s``, whose mean is ``2 s sqrt(2 / pi) = scatter`` (for ``scatter`` well below
    180 degrees, where the wrap-around at 180 degrees is negligible), with axes
    uniform on the sphere. The random part is uniform on SO(3).

    References
    ----------
    .. [2] J. Hirsch, K. Lücke, Acta Metall. 36 (1988) 2863-2882.
    .. [3] F. J. Humphreys, M. Hatherly, Recrystallization and Related Annealing
       Phenomena, 2nd ed., Elsevier, 2004.

    Examples
    --------
    >>> o = texture_orientations(4, "goss", scatter=0.0, sample_symmetry="none")
    >>> o.euler_deg.round(6).tolist()[0]
    [0.0, 45.0, 0.0]
    """
    n = _check_count(n_grains)
    if not isinstance(scatter, numbers.Real) or not (0 <= scatter <= 60):
        raise ValueError(
            f"scatter must be an angle in degrees in [0, 60], got {scatter!r}"
        )
    mix = parse_texture(texture)
    sym = _sample_symmetry(sample_symmetry)
    rng = _rng(seed, _STREAM_TEXTURE)
    names = list(mix)
    order = rng.permutation(n)
    if volumes is None:
        counts = _counts([mix[k] for k in names], n)
        which = np.repeat(np.arange(len(names)), counts)[order]
    else:
        v = np.asarray(volumes, dtype=np.float64)
        if v.shape != (n,) or not np.isfinite(v).all() or (v <= 0).any():
            raise ValueError(
                f"volumes must be {n} finite numbers > 0 (one per grain), got shape "
                f"{v.shape}"
            )
        share = np.cumsum([mix[k] for k in names])
        cum = np.cumsum(v[order]) / v.sum()
        mid = cum - v[order] / (2 * v.sum())
        which = np.empty(n, np.int64)
        which[order] = np.minimum(
            np.searchsorted(share, mid, side="right"), len(names) - 1
        )
    quat = np.empty((n, 4))  # scipy order (x, y, z, w) while sampling
    sigma = math.radians(float(scatter)) * math.sqrt(math.pi / 8.0)
    for k, name in enumerate(names):
        idx = np.flatnonzero(which == k)
        if len(idx) == 0:
            continue
        if name == "random":
            rot = Rotation.random(len(idx), rng)
        else:
            ideal = _component_rotation(name)
            variant = rng.integers(len(sym), size=len(idx))
            base = sym[variant] * ideal
            delta = Rotation.from_rotvec(rng.normal(scale=sigma, size=(len(idx), 3)))
            rot = delta * base
        quat[idx] = np.atleast_2d(rot.as_quat())
    desc = ",".join(f"{k}:{mix[k]:.6g}" for k in names)
    return Orientations.from_rotation(
        Rotation.from_quat(quat),
        phases,
        description=f"texture {desc} (fractions by "
        f"{'number' if volumes is None else 'volume'}), scatter {float(scatter):g} "
        f"deg, sample symmetry {sample_symmetry}",
    )


def assign_orientations(
    phases,
    textures,
    *,
    scatter=5.0,
    seed=None,
    sample_symmetry="orthorhombic",
    volumes=None,
) -> Orientations:
    """Orientations for grains of several phases, one texture per phase.

    Parameters
    ----------
    phases : (N,) array_like of int
        Phase of each grain (0-based).
    textures : str or sequence of str
        Texture of each phase (see :func:`parse_texture`; ``"random"`` for none). A
        single string applies to every phase; a sequence needs one entry per phase
        present (``max(phases) + 1``).
    scatter : float or sequence of float
        Mean misorientation (degrees) from the components, per phase or for all.
    seed : int, optional
        Random seed (each phase draws from its own stream).
    sample_symmetry : {"orthorhombic", "none"}
        See :func:`texture_orientations`.
    volumes : (N,) array_like of float, optional
        Grain volumes: texture fractions are then volume fractions within each
        phase (see :func:`texture_orientations`).

    Returns
    -------
    Orientations
        With ``phases`` as given.

    Examples
    --------
    >>> o = assign_orientations([0, 1, 1, 0], ["cube", "random"], seed=3)
    >>> o.phases.tolist()
    [0, 1, 1, 0]
    """
    ph = np.asarray(phases)
    if ph.ndim != 1 or len(ph) == 0:
        raise ValueError(
            f"phases must be a non-empty 1D array (one per grain), got shape {ph.shape}"
        )
    ph = _phases(ph, len(ph))
    n_phases = int(ph.max()) + 1
    tex = [textures] * n_phases if isinstance(textures, (str, dict)) else list(textures)
    if len(tex) < n_phases:
        raise ValueError(
            f"textures has {len(tex)} entries but phases go up to {n_phases - 1}; "
            "expected one texture per phase"
        )
    sc = (
        [scatter] * n_phases
        if isinstance(scatter, numbers.Real)
        else [float(s) for s in scatter]
    )
    if len(sc) < n_phases:
        raise ValueError(
            f"scatter has {len(sc)} entries but there are {n_phases} phases; expected "
            "one number or one per phase"
        )
    if volumes is not None:
        volumes = np.asarray(volumes, dtype=np.float64)
        if volumes.shape != ph.shape:
            raise ValueError(
                f"volumes must have shape {ph.shape} like phases, got {volumes.shape}"
            )
    quat = np.zeros((len(ph), 4))
    descs = []
    for p in range(n_phases):
        idx = np.flatnonzero(ph == p)
        if len(idx) == 0:
            continue
        # one independent stream per phase
        sub = None if seed is None else _rng([seed, p], _STREAM_TEXTURE)
        o = texture_orientations(
            len(idx),
            tex[p],
            scatter=sc[p],
            seed=sub,
            sample_symmetry=sample_symmetry,
            volumes=None if volumes is None else volumes[idx],
        )
        quat[idx] = o.quaternions
        descs.append(f"phase {p}: {o.description}")
    return Orientations.from_quaternions(quat, ph, description="; ".join(descs))


# ----------------------------------------------------------------------------------
# files

_QUAT_NAMES = {"w", "x", "y", "z", "qw", "qx", "qy", "qz", "q0", "q1", "q2", "q3"}
_EULER_NAMES = {"phi1", "phi", "phi2", "phi1_deg", "phi_deg", "phi2_deg"}


def _split(line):
    return [t for t in line.replace(",", " ").replace(";", " ").split() if t]


def read_orientations(path, n_grains=None, *, phases=None) -> Orientations:
    """Read one orientation per grain from a text file.

    Parameters
    ----------
    path : str or os.PathLike
        Text file, one grain per line (grain ``i`` on the ``i``-th data line),
        whitespace- or comma-separated; ``#`` starts a comment; blank lines are
        skipped. Four columns are quaternions ``w x y z`` (scalar first, unit, either
        sign); three columns are Bunge Euler angles ``phi1 Phi phi2`` in degrees. An
        optional first line of names (``w x y z`` / ``qw qx qy qz`` or
        ``phi1 Phi phi2``) states the kind explicitly.
    n_grains : int, optional
        Expected number of grains; the file must have exactly that many lines.
    phases : (N,) array_like of int, optional
        Phase of each grain.

    Returns
    -------
    Orientations

    Raises
    ------
    ValueError
        For a missing or empty file, a line with another column count, a
        non-numeric value, a header that does not match the columns, a quaternion
        that is not unit, or a number of lines other than ``n_grains``. Messages give
        the file and line number.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"orientations file {path!r} does not exist")
    rows, lines, kind = [], [], None
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = _split(line)
            if not rows and kind is None:
                low = {t.lower() for t in tokens}
                if low <= _QUAT_NAMES and len(tokens) == 4:
                    kind = "quaternion"
                    continue
                if low <= _EULER_NAMES and len(tokens) == 3:
                    kind = "euler"
                    continue
            try:
                values = [float(t) for t in tokens]
            except ValueError:
                raise ValueError(
                    f"orientations file {path!r} line {lineno}: {line!r} is not "
                    "numeric; expected 'w x y z' (quaternion) or 'phi1 Phi phi2' "
                    "(Bunge, degrees) per line"
                ) from None
            if rows and len(values) != len(rows[0]):
                raise ValueError(
                    f"orientations file {path!r} line {lineno} has {len(values)} "
                    f"columns but line {lines[0]} has {len(rows[0])}; expected the "
                    "same count on every line"
                )
            if len(values) not in (3, 4):
                raise ValueError(
                    f"orientations file {path!r} line {lineno} has {len(values)} "
                    "columns; expected 4 (w x y z) or 3 (phi1 Phi phi2 in degrees)"
                )
            rows.append(values)
            lines.append(lineno)
    if not rows:
        raise ValueError(
            f"orientations file {path!r} has no data lines; expected one orientation "
            "per grain"
        )
    width = len(rows[0])
    if (kind == "quaternion" and width != 4) or (kind == "euler" and width != 3):
        raise ValueError(
            f"orientations file {path!r} has a {kind} header but {width} columns; "
            f"expected {4 if kind == 'quaternion' else 3}"
        )
    if n_grains is not None and len(rows) != n_grains:
        raise ValueError(
            f"orientations file {path!r} has {len(rows)} orientations; expected "
            f"{n_grains} (one per grain)"
        )
    data = np.array(rows, dtype=np.float64)
    desc = f"file:{os.path.abspath(path)}"
    if width == 4:
        norm = np.linalg.norm(data, axis=1)
        bad = np.flatnonzero(np.abs(norm - 1.0) > _UNIT_TOL)
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"orientations file {path!r} line {lines[i]}: quaternion has norm "
                f"{norm[i]:.6g}; expected a unit quaternion w x y z (or 3 columns of "
                "Bunge angles in degrees)"
            )
        return Orientations.from_quaternions(data, phases, description=desc)
    return Orientations.from_euler(data, phases, description=desc)


# ----------------------------------------------------------------------------------
# misorientation


def misorientation_angles(q_a, q_b, *, symmetry="cubic") -> np.ndarray:
    """Misorientation angles in degrees between pairs of orientations.

    Parameters
    ----------
    q_a, q_b : (M, 4) array_like of float
        Scalar-first unit quaternions (``Orientations.quaternions`` rows).
    symmetry : {"cubic", "none"}
        Crystal symmetry of both grains: the disorientation angle (smallest over the
        24 cubic rotations, at most 62.8 degrees), or the plain rotation angle in
        ``[0, 180]``.

    Returns
    -------
    (M,) ndarray of float64
        Angles in degrees.

    Examples
    --------
    >>> a = Orientations.from_euler([[0, 0, 0]]).quaternions
    >>> b = Orientations.from_euler([[0, 0, 90]]).quaternions
    >>> misorientation_angles(a, b, symmetry="none").round(6).tolist()
    [90.0]
    >>> misorientation_angles(a, b).round(6).tolist()
    [0.0]
    """
    qa = np.atleast_2d(np.asarray(q_a, dtype=np.float64))
    qb = np.atleast_2d(np.asarray(q_b, dtype=np.float64))
    if qa.shape != qb.shape or qa.ndim != 2 or qa.shape[1] != 4:
        raise ValueError(
            f"q_a and q_b must both have shape (M, 4), got {qa.shape} and {qb.shape}"
        )
    ops = _symmetry_ops(symmetry)
    if len(qa) == 0:
        return np.zeros(0)
    ra = Rotation.from_quat(qa[:, [1, 2, 3, 0]])
    rb = Rotation.from_quat(qb[:, [1, 2, 3, 0]])
    delta = ra.inv() * rb
    best = np.full(len(qa), np.inf)
    for k in range(len(ops)):
        best = np.minimum(best, (ops[k] * delta).magnitude())
    return np.degrees(best)


# ----------------------------------------------------------------------------------
# two phases


@dataclass(frozen=True)
class PhaseVolumes:
    """Grain volumes and phases of a two-phase microstructure.

    Attributes
    ----------
    volumes : (N,) ndarray of float64
        Relative grain volumes summing to 1: pass as ``volumes=`` to
        :func:`~rasterquant.generate_microstructure`.
    phases : (N,) ndarray of int64
        Phase of each grain (1 for the phase of ``phase_fraction``): pass as
        ``phases=``.
    phase_fraction : float
        Achieved volume fraction of phase 1 (the requested one, exactly).
    size_ratio : float
        Achieved mean-volume ratio (phase 1 over phase 0).
    n_per_phase : tuple of int
        Grains of phase 0 and phase 1.
    """

    volumes: np.ndarray
    phases: np.ndarray
    phase_fraction: float
    size_ratio: float
    n_per_phase: tuple


def dual_phase_volumes(
    n_grains, phase_fraction, size_ratio=1.0, *, sigma=0.0, seed=None
) -> PhaseVolumes:
    """Volumes and phases meeting a phase volume fraction and a mean-size ratio.

    Parameters
    ----------
    n_grains : int
        Total number of grains, ``>= 2``.
    phase_fraction : float
        Volume fraction of phase 1, in ``(0, 1)``.
    size_ratio : float
        Mean grain volume of phase 1 over that of phase 0, ``> 0``.
    sigma : float
        Spread within each phase: volumes ``exp(sigma Z)`` (``Z`` standard normal)
        rescaled per phase, so the phase totals stay exact. 0 gives equal volumes
        within each phase.
    seed : int, optional
        Seed of the phase order and of the spread.

    Returns
    -------
    PhaseVolumes

    Raises
    ------
    ValueError
        For a fraction outside ``(0, 1)``, a ratio ``<= 0``, ``sigma < 0`` or
        ``n_grains < 2``.

    Warns
    -----
    RasterquantWarning
        When whole grains miss the ratio by more than 10 % (too few grains of one
        phase); ``size_ratio`` of the result is what is achieved.

    Notes
    -----
    With ``n1`` grains of phase 1 and ``n0 = N - n1`` of phase 0, the phase totals
    ``f`` and ``1 - f`` give mean volumes ``f / n1`` and ``(1 - f) / n0``, hence the
    ratio ``r(n1) = f n0 / ((1 - f) n1)``; ``r = R`` at
    ``n1* = N f / (f + R (1 - f))``. The count ``n1`` is the integer in ``[1, N - 1]``
    that makes ``|log(r(n1) / R)|`` smallest, so the fraction is met exactly and the
    ratio as closely as whole grains allow (``r`` changes by a factor of about
    ``1 + 1/n1`` per grain). The phase-1 grains are a random subset.

    Examples
    --------
    >>> pv = dual_phase_volumes(10, 0.5, 4.0, seed=0)
    >>> pv.n_per_phase, round(pv.size_ratio, 6), float(pv.volumes[pv.phases == 1].sum())
    ((8, 2), 4.0, 0.5)
    """
    n = _check_count(n_grains)
    if n < 2:
        raise ValueError(f"n_grains must be >= 2 for two phases, got {n}")
    f = phase_fraction
    if not isinstance(f, numbers.Real) or not (0 < f < 1):
        raise ValueError(f"phase_fraction must be in (0, 1), got {phase_fraction!r}")
    if (
        not isinstance(size_ratio, numbers.Real)
        or not math.isfinite(size_ratio)
        or size_ratio <= 0
    ):
        raise ValueError(f"size_ratio must be a number > 0, got {size_ratio!r}")
    if not isinstance(sigma, numbers.Real) or not (0 <= sigma < math.inf):
        raise ValueError(f"sigma must be a number >= 0, got {sigma!r}")
    f, ratio = float(f), float(size_ratio)
    n1 = np.arange(1, n)
    achieved = f * (n - n1) / ((1 - f) * n1)
    n1 = int(n1[np.argmin(np.abs(np.log(achieved / ratio)))])
    n0 = n - n1
    rng = _rng(seed, _STREAM_PHASES)
    phases = np.zeros(n, np.int64)
    phases[rng.permutation(n)[:n1]] = 1
    spread = np.exp(sigma * rng.standard_normal(n)) if sigma > 0 else np.ones(n)
    vols = np.empty(n)
    for p, total in ((0, 1 - f), (1, f)):
        m = phases == p
        vols[m] = total * spread[m] / spread[m].sum()
    achieved = float(f * n0 / ((1 - f) * n1))
    if abs(achieved / ratio - 1) > _RATIO_WARN:
        warnings.warn(
            f"size_ratio {ratio:g} is met as {achieved:.4g} with {n0} + {n1} grains "
            f"(whole grains at phase_fraction {f:g}); more grains get closer",
            RasterquantWarning,
            stacklevel=2,
        )
    return PhaseVolumes(
        volumes=vols,
        phases=phases,
        phase_fraction=float(vols[phases == 1].sum()),
        size_ratio=achieved,
        n_per_phase=(n0, n1),
    )
