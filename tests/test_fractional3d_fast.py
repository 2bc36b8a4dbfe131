"""The fast paths of the 3D fractional pass against the polytope references.

``_split_voxel_3d`` (shared-vertex clipper, voxels cut by three or more cells) and the
two-cell cut ``_cut_box_3d`` (divergence theorem) must give the pieces and facet areas
of one voxel of the half-space reference (``reference.voxel_pieces``) up to rounding;
the whole pass must match the polytope reference (``reference.fractional_moments``),
the brute-force labels and finite differences of its masses, on non-uniform
densities, periodic or not.
"""

import numpy as np
import pytest
import reference

import rasterquant as rq
from rasterquant.assign import _fractional as fr


def _voxel_case(rng, nact, spacing, degenerate=False):
    """Sites relative to a voxel centre and power distances there (all planes cut).

    With ``degenerate``, the sites lie on a lattice of half-voxel steps with zero
    weights: bisectors fall on voxel faces, edges and corners.
    """
    h = np.asarray(spacing)
    if degenerate:
        rel = rng.integers(-3, 4, size=(nact, 3)) * h / 2
        rel = np.unique(rel, axis=0)
        while len(rel) < nact:
            extra = rng.integers(-3, 4, size=(1, 3)) * h / 2
            rel = np.unique(np.r_[rel, extra], axis=0)
        rel = rng.permutation(rel)
        dcen = (rel**2).sum(axis=1)
    else:
        rel = rng.normal(scale=1.2, size=(nact, 3)) * h
        w = rng.normal(scale=0.3, size=nact) * h.sum()
        dcen = (rel**2).sum(axis=1) - w
    return np.ascontiguousarray(rel.T), np.ascontiguousarray(dcen)


def _fast(spacing, nact, rel, dcen):
    """Pieces, facet areas and status from the path the pass takes (``_pieces_3d``)."""
    sc = fr._scratch_3d(4, fr.MAXA)
    piece, flen, bufs, vb = sc[6], sc[7], sc[8], sc[9]
    flen[:] = 0.0
    r3 = (rel[0].copy(), rel[1].copy(), rel[2].copy())
    status = fr._pieces_3d(
        np.asarray(spacing, dtype=np.float64), nact, dcen, r3, piece, flen, True,
        bufs, vb,
    )  # fmt: skip
    return piece[:nact].copy(), np.triu(flen[:nact, :nact], 1), status


@pytest.mark.parametrize("nact", range(2, 10))
@pytest.mark.parametrize("degenerate", [False, True])
def test_fast_split_equals_polytope_reference(rng, nact, degenerate):
    """Masses, moments and facet areas of split voxels: fast path == reference."""
    for spacing in ((1.0, 1.0, 1.0), (0.7, 1.3, 2.1)):
        vol = np.prod(spacing)
        area = max(spacing) ** 2
        for _ in range(40):
            rel, dcen = _voxel_case(rng, nact, spacing, degenerate)
            p_ref, f_ref = reference.voxel_pieces(spacing, rel.T, dcen)
            p_fast, f_fast, status = _fast(spacing, nact, rel, dcen)
            assert status == 0
            np.testing.assert_allclose(
                p_fast[:, 0], p_ref[:, 0], rtol=0, atol=1e-11 * vol
            )
            np.testing.assert_allclose(p_fast[:, 1:4], p_ref[:, 1:4], atol=1e-11 * vol)
            np.testing.assert_allclose(p_fast[:, 4], p_ref[:, 4], atol=1e-11 * vol)
            np.testing.assert_allclose(f_fast, f_ref, rtol=0, atol=1e-10 * area)
            np.testing.assert_allclose(p_fast[:, 0].sum(), vol, rtol=1e-12)


def test_failed_clips_are_retried_then_left_empty(rng):
    """Small clip buffers: a failed slot is clipped again backwards, else left empty.

    A slot whose two clips fail gets no piece (status 2); the last slot takes the
    rest, so the voxel's volume and moments are kept.
    """
    spacing = (0.7, 1.3, 2.1)
    vol = np.prod(spacing)
    retried = failed = 0
    for _ in range(100):
        nact = int(rng.integers(5, 9))
        rel, dcen = _voxel_case(rng, nact, spacing)
        mv = int(rng.integers(10, 16))
        vb = (
            np.zeros((2, mv, 4)),
            np.zeros((2, 3, 4 * mv), np.int64),
            np.zeros((7, mv), np.int64),
        )
        r3 = (rel[0].copy(), rel[1].copy(), rel[2].copy())
        piece = np.zeros((nact, 5))
        flen = np.zeros((nact, nact))
        status = fr._split_voxel_3d(*spacing, nact, dcen, r3, piece, flen, True, vb)
        p_ref, _ = reference.voxel_pieces(spacing, rel.T, dcen)
        lost = False
        for a in range(nact):
            if a == np.argmax(dcen):
                continue
            fwd, bwd = (
                fr._clip_slot(*spacing, a, nact, np.arange(nact), back, dcen, r3, vb)[0]
                for back in (False, True)
            )
            if fwd == fr._VC_FAIL and bwd == fr._VC_FAIL:
                lost = True
                failed += 1
                np.testing.assert_array_equal(piece[a], 0.0)
            else:
                retried += fwd == fr._VC_FAIL
                np.testing.assert_allclose(piece[a], p_ref[a], atol=1e-11 * vol)
        assert status == (2 if lost else 0)
        np.testing.assert_allclose(piece[:, 0].sum(), vol, rtol=1e-12)
        np.testing.assert_allclose(piece[:, 1:4].sum(axis=0), 0.0, atol=1e-12 * vol)
        second = vol * sum(x * x for x in spacing) / 12
        np.testing.assert_allclose(piece[:, 4].sum(), second, rtol=1e-12)
    assert retried > 0
    assert failed > 0


def test_shared_vertex_clipper_cuts_like_a_plane(rng):
    """One clip of the voxel by a plane: the piece is the closed-form cut's."""
    h = (0.8, 1.1, 1.7)
    vb = fr._scratch_3d(4, fr.MAXA)[9]
    vf, fi, sc = vb
    piece = np.zeros((2, 5))
    bufs = np.zeros((6, fr.MAXV))
    for _ in range(200):
        n = rng.normal(size=3)
        b = rng.uniform(-0.5, 0.5) * np.abs(n).dot(h)
        nv, nf = fr._vbox(*h, vf, fi)
        code, nv, nf = fr._vclip(vf, fi, sc, 0, nv, nf, *n, b, 1)
        assert code == fr._VC_CUT
        fr._vmoments(vf, fi, 1, nf, piece, 0)
        cut = fr._cut_box_3d(*h, *n, b, bufs)
        np.testing.assert_allclose(piece[0], cut[:5], rtol=0, atol=1e-13)
        # the new face is the cap: its area is the cut's
        caps = [f for f in range(nf) if fi[1, 2, f] == 1]
        assert len(caps) == 1
        np.testing.assert_allclose(
            fr._vface_area(vf, fi, 1, caps[0]), cut[5], rtol=1e-12
        )


def _blobs(rng, shape, periodic, **kw):
    """A non-uniform density (Gaussian blobs on a floor) and sites drawn from it."""
    grids = np.meshgrid(*[np.arange(s) + 0.5 for s in shape], indexing="ij")
    v = np.full(shape, 0.05)
    for _ in range(3):
        c = rng.random(3) * shape
        r2 = sum((g - c[a]) ** 2 for a, g in enumerate(grids))
        v += np.exp(-r2 / (0.1 * min(shape) ** 2))
    return rq.Density.from_array(v, periodic=periodic, **kw)


@pytest.mark.parametrize(
    ("shape", "n", "periodic"),
    [
        ((5, 5, 6), 12, False),
        ((4, 3, 5), 7, (True, False, True)),
        ((3, 4, 3), 4, True),
    ],
)
def test_crowded_pass_matches_polytope_reference(rng, shape, n, periodic):
    """Cells a few voxels wide (most voxels cut by 3+ cells) on non-uniform density."""
    density = _blobs(rng, shape, periodic, spacing=rng.uniform(0.7, 1.4, 3))
    g = density.grid
    lo = np.array([e[0] for e in g.extent])
    hi = np.array([e[1] for e in g.extent])
    pts = lo + rng.random((n, 3)) * (hi - lo)
    w = rng.normal(scale=0.5, size=n)
    cells = rq.assign_cells(density, pts, w, quadrature="fractional")
    ref_m, ref_b = reference.fractional_moments(g, density.values, pts, w)
    np.testing.assert_allclose(cells.masses, ref_m, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(g.min_image(cells.barycenters - ref_b), 0.0, atol=1e-7)
    np.testing.assert_array_equal(cells.labels, reference.assign_labels(g, pts, w))


@pytest.mark.parametrize("periodic", [False, True])
def test_labels_are_brute_force_argmin(rng, periodic):
    """Labels of a larger pass (mini-box pruning) equal the brute-force argmin."""
    density = _blobs(rng, (20, 17, 23), periodic)
    pts = rq.sample_points(density, 150, seed=3)
    w = rng.normal(scale=3.0, size=150)
    cells = rq.assign_cells(density, pts, w, quadrature="fractional")
    np.testing.assert_array_equal(
        cells.labels, reference.assign_labels(density.grid, pts, w)
    )
    np.testing.assert_allclose(cells.masses.sum(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("periodic", [False, (True, False, True)])
def test_crowded_jacobian_equals_finite_differences(rng, periodic):
    """Many voxels cut by 3+ cells: the Jacobian is the masses' derivative."""
    density = _blobs(rng, (7, 8, 6), periodic, spacing=(1.3, 0.9, 1.1))
    n = 24
    pts = rq.sample_points(density, n, seed=5)
    w = rng.normal(scale=0.3, size=n)
    jac = rq.mass_jacobian(density, pts, w, quadrature="fractional").toarray()
    eps = 1e-6 * (density.grid.volume / n) ** (2 / 3)
    fd = reference.assign_fd_jacobian(density, pts, w, eps)
    scale = np.abs(fd).max()
    np.testing.assert_allclose(jac, fd, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(jac, jac.T, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(jac.sum(axis=1), 0.0, rtol=0, atol=1e-12 * scale)
