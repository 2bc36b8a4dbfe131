"""DAMASK material configuration (``material.yaml``) for a grain map.

DAMASK's grid solver reads the geometry from a ``.vti`` file whose integer cell array
``material`` holds 0-based indices into the ``material`` list of ``material.yaml``
(``damask.GeomGrid.load``); rasterquant writes the grain ids there (see
:mod:`rasterquant.io.vtk` and ``rasterquant microstructure``), so entry ``i`` of the
list written here is grain ``i``. Each entry is one constituent (a single crystal,
homogenization "SX" of type ``pass``) with its phase name, volume fraction ``v: 1.0``
and orientation ``O``: the scalar-first unit quaternion ``(w, x, y, z)``, ``w >= 0``,
of :class:`~rasterquant.microstructure.orientations.Orientations`, which is DAMASK's
own quaternion of the same Bunge Euler angles.

The file is plain YAML written as text (PyYAML is not needed). Floats always carry a
decimal point and a signed exponent (``1.073e+11``), so that YAML 1.1 readers such
as PyYAML read numbers, not strings. The ``phase`` section is a *template* (elastic
constants and phenomenological power-law plasticity of aluminium, from DAMASK's
example files) marked ``EDIT`` in the file: replace it with the real material before
running a simulation.
"""

from __future__ import annotations

import re

from .atomic import atomic_write

__all__ = ["write_material_yaml"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")

# Template of one phase (every phase gets it, under its own name): aluminium.
# Elastic: J. Vallin et al., J. Appl. Phys. 35 (1964) 1825 (DAMASK
# examples/config/phase/mechanical/elastic/Hooke_Al.yaml);
# plastic: DAMASK examples/config/phase/mechanical/plastic/phenopowerlaw_Al.yaml
# (fitted to W.F. Hosford et al., Acta Metall. 8 (1960) 187).
_PHASE_TEMPLATE = """\
  {name}:
    # EDIT: placeholder parameters (aluminium, fcc, from DAMASK's example files).
    # Replace the lattice (cF fcc, cI bcc, hP hexagonal), the elastic constants
    # and the plasticity model by your material's.
    lattice: cF
    mechanical:
      output: [F, P, F_e, F_p, L_p, O]
      elastic:
        type: Hooke
        C_11: 1.073e+11
        C_12: 6.08e+10
        C_44: 2.83e+10
      plastic:
        type: phenopowerlaw
        output: [xi_sl, gamma_sl]
        N_sl: [12]
        n_sl: 20
        a_sl: 5.4
        h_0_sl-sl: 2.815e+8
        xi_0_sl: [2.69e+6]
        xi_inf_sl: [6.75e+7]
        h_sl-sl: [1, 1, 5.123, 0.574, 1.123, 1.123, 1]
        dot_gamma_0_sl: 7.5e-5
"""


def _yaml_float(value) -> str:
    """Format a float so that YAML 1.1 and 1.2 readers both read a float."""
    text = repr(float(value))
    if "e" in text:
        mant, exp = text.split("e")
        if "." not in mant:
            mant += ".0"
        if exp[0] not in "+-":
            exp = "+" + exp
        return f"{mant}e{exp}"
    if "." not in text and "n" not in text:  # inf/nan are rejected before
        text += ".0"
    return text


def _names(phase_names, n_phases):
    if phase_names is None:
        return [f"phase_{p}" for p in range(n_phases)]
    names = [phase_names] if isinstance(phase_names, str) else list(phase_names)
    if len(names) < n_phases:
        raise ValueError(
            f"phase_names has {len(names)} names but the phases go up to "
            f"{n_phases - 1}; expected one name per phase"
        )
    for nm in names:
        if not isinstance(nm, str) or not _NAME_RE.match(nm):
            raise ValueError(
                f"phase_names entry {nm!r} is not a valid name; expected letters, "
                "digits, '_', '-', '.', starting with a letter or '_'"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"phase_names {names} has duplicates; expected distinct names")
    return names


def write_material_yaml(
    path,
    orientations,
    *,
    phase_names=None,
    homogenization="SX",
    header=None,
) -> None:
    """Write a DAMASK ``material.yaml`` with one material per grain.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``material.yaml``); written atomically.
    orientations : Orientations
        Orientation and phase of every grain
        (:class:`~rasterquant.microstructure.orientations.Orientations`); material
        ``i`` is grain ``i``, i.e. the ``material`` value ``i`` in the ``.vti``.
    phase_names : str or sequence of str, optional
        DAMASK phase name of each phase (default ``phase_0``, ``phase_1``, ...).
    homogenization : str
        Name of the single-crystal homogenization (``N_constituents: 1``,
        ``mechanical: {type: pass}``).
    header : str, optional
        Extra comment lines at the top (e.g. the command that made the file).

    Raises
    ------
    ValueError
        For bad names, or an unwritable path.

    Notes
    -----
    Layout (DAMASK 3)::

        homogenization:
          SX:
            N_constituents: 1
            mechanical: {type: pass}
        phase:
          phase_0: {lattice: cF, mechanical: {...}}     # template, EDIT
        material:
          - homogenization: SX                          # grain 0
            constituents:
              - phase: phase_0
                v: 1.0
                O: [w, x, y, z]
          ...

    ``damask.ConfigMaterial.load(path)`` reads it back (``is_complete`` and
    ``is_valid`` hold); the phase parameters are placeholders, so check them before
    a simulation.
    """
    from ..microstructure.orientations import Orientations

    if not isinstance(orientations, Orientations):
        raise TypeError(
            f"orientations must be an Orientations, got {type(orientations).__name__}"
        )
    if not isinstance(homogenization, str) or not _NAME_RE.match(homogenization):
        raise ValueError(
            f"homogenization {homogenization!r} is not a valid name; expected "
            "letters, digits, '_', '-', '.'"
        )
    n_phases = int(orientations.phases.max()) + 1
    names = _names(phase_names, n_phases)
    q = orientations.quaternions
    lines = [
        "# DAMASK material configuration written by rasterquant.",
        "# material[i] is grain i: the value i of the cell array 'material' in the",
        "# .vti geometry (0-based). O is the scalar-first unit quaternion (w, x, y,",
        "# z), w >= 0, of the grain (DAMASK convention, Bunge angles in the grain",
        "# table). The phase section is a TEMPLATE: edit it before a simulation.",
    ]
    if header:
        lines += [f"# {h}" for h in str(header).splitlines()]
    lines += [
        "",
        "homogenization:",
        f"  {homogenization}:",
        "    N_constituents: 1",
        "    mechanical: {type: pass}",
        "",
        "phase:",
    ]
    text = "\n".join(lines) + "\n"
    for p in range(n_phases):
        text += _PHASE_TEMPLATE.format(name=names[p])
    text += "\nmaterial:\n"
    with atomic_write(path, "w") as fh:
        fh.write(text)
        for i in range(len(q)):
            o = ", ".join(_yaml_float(v) for v in q[i])
            fh.write(
                f"  - homogenization: {homogenization}  # grain {i}\n"
                "    constituents:\n"
                f"      - phase: {names[int(orientations.phases[i])]}\n"
                "        v: 1.0\n"
                f"        O: [{o}]\n"
            )
