"""Slow, obviously correct reference implementations (pure numpy, no numba).

The fast kernels are tested against these. Everything is in physical coordinates:
pixel centres are ``grid.origin + (k + 0.5) * grid.spacing``, ``points`` is ``(N, d)``
in array-axis order and ``weights`` (psi) is ``(N,)``. ``values`` are pixel masses
(a ``(H, W)`` or ``(D, H, W)`` array summing to 1; a ``Density`` is accepted too).

Conventions (DESIGN.md sections 1-3):

- power cell ``Lag_i = {x : |x - y_i|^2 - psi_i <= |x - y_j|^2 - psi_j}``; a pixel
  belongs wholly to the cell owning its centre; ties go to the lowest index;
- on periodic axes displacements use the minimum image ``d - L * round(d / L)``;
- the Jacobian is the "discrete boundary sum" over face-adjacent pixel pairs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "assign_labels",
    "cell_moments",
    "fd_jacobian",
    "jacobian_dense",
    "masses",
    "power_energy",
    "voxel_pieces",
]

# Bound on the number of (pixel, point) pairs held in memory at once.
_BLOCK_PAIRS = 2_000_000


def _values(grid, values):
    """Pixel masses as a float64 array of ``grid.shape`` (accepts a ``Density``)."""
    v = getattr(values, "values", values)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != tuple(grid.shape):
        raise ValueError(f"values has shape {v.shape}, expected {grid.shape}")
    return v


def _points(grid, points):
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != grid.ndim:
        raise ValueError(f"points must have shape (N, {grid.ndim}), got {pts.shape}")
    return pts


def _min_image(grid, d):
    """Minimum-image displacement along periodic axes (a copy); last axis = coords."""
    d = np.array(d, dtype=np.float64)
    length = grid.lengths
    for a, p in enumerate(grid.periodic):
        if p:
            d[..., a] -= length[a] * np.round(d[..., a] / length[a])
    return d


def assign_labels(grid, points, weights):
    """Brute-force power assignment of every pixel centre.

    Returns an int64 array of ``grid.shape`` with
    ``argmin_j |x - y_j|^2 - psi_j`` (minimum image on periodic axes; lowest index
    wins ties).
    """
    pts = _points(grid, points)
    psi = np.asarray(weights, dtype=np.float64).reshape(len(pts))
    centres = grid.pixel_centres()
    n_pix = len(centres)
    labels = np.empty(n_pix, dtype=np.int64)
    block = max(1, _BLOCK_PAIRS // max(1, len(pts)))
    for start in range(0, n_pix, block):
        x = centres[start : start + block]
        d = _min_image(grid, x[:, None, :] - pts[None, :, :])
        cost = np.sum(d**2, axis=2) - psi[None, :]
        labels[start : start + block] = np.argmin(cost, axis=1)
    return labels.reshape(grid.shape)


def cell_moments(grid, values, labels, points):
    """Masses, barycenters and second moments of the cells given by ``labels``.

    Returns
    -------
    masses : (N,) float64
        Sum of the pixel masses of each cell.
    barycenters : (N, d) float64
        ``y_i + sum_p m_p d_p / m_i`` with ``d_p`` the (min-image) displacement
        ``x_p - y_i``, wrapped into the box on periodic axes; ``y_i`` for empty cells.
    energies : (N,) float64
        ``sum_p m_p (|d_p|^2 + sum_a h_a^2 / 12)`` (each pixel's own extent counted).
    """
    pts = _points(grid, points)
    n = len(pts)
    v = _values(grid, values).ravel()
    lab = np.asarray(labels, dtype=np.int64).ravel()
    centres = grid.pixel_centres()
    d = _min_image(grid, centres - pts[lab])
    mass = np.bincount(lab, weights=v, minlength=n)
    first = np.stack(
        [np.bincount(lab, weights=v * d[:, a], minlength=n) for a in range(grid.ndim)],
        axis=1,
    )
    extent = np.sum(np.asarray(grid.spacing) ** 2) / 12.0
    energy = np.bincount(lab, weights=v * (np.sum(d**2, axis=1) + extent), minlength=n)
    bary = pts.copy()
    full = mass > 0
    bary[full] += first[full] / mass[full, None]
    return mass, grid.wrap(bary), energy


def _face_pairs(grid, labels, v, axis):
    """Labels and masses of the pixel pairs (p, p + e_axis), wrapping if periodic."""
    if grid.periodic[axis]:
        return (
            labels,
            np.roll(labels, -1, axis=axis),
            v,
            np.roll(v, -1, axis=axis),
        )
    n = labels.shape[axis]
    lo = tuple(slice(0, n - 1) if a == axis else slice(None) for a in range(grid.ndim))
    hi = tuple(slice(1, n) if a == axis else slice(None) for a in range(grid.ndim))
    return labels[lo], labels[hi], v[lo], v[hi]


def jacobian_dense(grid, values, labels, points, zero_floor=None):
    """Dense ``(N, N)`` Jacobian ``dm/dpsi`` from the discrete boundary sums.

    With ``zero_floor`` only the faces between two zero-mass pixels count, each as if
    both pixels had the mass ``zero_floor`` (the solver's floor links).

    For face-adjacent pixels ``p, q`` along axis ``k`` with labels ``i != j``:
    ``c = rho_bar * A_k * |n_k| / (2 |y_i - y_j|)`` with ``rho_bar`` the mean mass per
    volume of ``p`` and ``q``, ``A_k = pixel_volume / h_k`` and
    ``n = (y_j - y_i) / |y_j - y_i|`` between the images of the sites nearest to the
    face (periodic axes); then ``J[i, j] -= c``,
    ``J[j, i] -= c``, ``J[i, i] += c``, ``J[j, j] += c``.
    """
    pts = _points(grid, points)
    n = len(pts)
    v = _values(grid, values)
    lab = np.asarray(labels, dtype=np.int64).reshape(grid.shape)
    vol = grid.pixel_volume
    jac = np.zeros((n, n))
    for axis in range(grid.ndim):
        li, lj, mp, mq = _face_pairs(grid, lab, v, axis)
        cut = li != lj
        i, j = li[cut], lj[cut]
        if i.size == 0:
            continue
        rho_bar = (mp[cut] + mq[cut]) / (2.0 * vol)
        if zero_floor is not None:
            rho_bar = np.where(rho_bar == 0.0, zero_floor / vol, 0.0)
        area = vol / grid.spacing[axis]
        # the images of y_i and y_j nearest to the face (they may meet across the wrap
        # through a different image than the minimum one of y_j - y_i)
        centres = grid.pixel_centres().reshape(*grid.shape, grid.ndim)
        if not grid.periodic[axis]:
            m = grid.shape[axis]
            centres = centres[
                tuple(
                    slice(0, m - 1) if a == axis else slice(None)
                    for a in range(grid.ndim)
                )
            ]
        xf = centres.reshape(-1, grid.ndim)[cut.ravel()].copy()
        xf[:, axis] += grid.spacing[axis] / 2.0
        dy = _min_image(grid, xf - pts[i]) - _min_image(grid, xf - pts[j])
        dist = np.sqrt(np.sum(dy**2, axis=1))
        c = rho_bar * area * np.abs(dy[:, axis]) / dist / (2.0 * dist)
        np.add.at(jac, (i, j), -c)
        np.add.at(jac, (j, i), -c)
        np.add.at(jac, (i, i), c)
        np.add.at(jac, (j, j), c)
    return jac


def masses(grid, values, points, weights):
    """Cell masses ``(N,)`` by brute-force assignment and a bincount."""
    pts = _points(grid, points)
    lab = assign_labels(grid, pts, weights)
    v = _values(grid, values)
    return np.bincount(lab.ravel(), weights=v.ravel(), minlength=len(pts))


def central_differences(mass_fn, weights, eps):
    """``J[:, j] = dm/dpsi_j`` of ``mass_fn(psi)``, central differences of step eps."""
    w = np.asarray(weights, dtype=np.float64)
    jac = np.empty((len(w), len(w)))
    for j in range(len(w)):
        plus, minus = w.copy(), w.copy()
        plus[j] += eps
        minus[j] -= eps
        jac[:, j] = (mass_fn(plus) - mass_fn(minus)) / (2.0 * eps)
    return jac


def assign_fd_jacobian(density, points, weights, eps, quadrature="fractional"):
    """Central finite differences of the masses of the public ``assign_cells``.

    ``J[:, j] = dm/dpsi_j``, each column from two calls at ``psi_j +- eps``: the
    oracle of the compiled Jacobians (which must be the masses' derivative).
    """
    import rasterquant as rq

    return central_differences(
        lambda w: rq.assign_cells(density, points, w, quadrature=quadrature).masses,
        weights,
        eps,
    )


def fd_jacobian(grid, values, points, weights, eps):
    """Central finite differences of :func:`masses`: ``J[:, j] = dm/dpsi_j``."""
    pts = _points(grid, points)
    psi = np.asarray(weights, dtype=np.float64).reshape(len(pts))
    return central_differences(lambda w: masses(grid, values, pts, w), psi, eps)


def power_energy(grid, values, points, weights):
    """Total transport cost ``sum_i int_{Lag_i} |x - y_i|^2 drho`` on the raster."""
    lab = assign_labels(grid, points, weights)
    return float(np.sum(cell_moments(grid, values, lab, points)[2]))


def _images(grid, pts, psi):
    """Copies of the sites shifted by -1, 0, +1 periods on periodic axes."""
    shifts = [(-1, 0, 1) if p else (0,) for p in grid.periodic]
    lengths = grid.lengths
    pos, w, own = [], [], []
    for combo in np.array(np.meshgrid(*shifts, indexing="ij")).reshape(grid.ndim, -1).T:
        pos.append(pts + combo * lengths)
        w.append(psi)
        own.append(np.arange(len(pts)))
    return np.concatenate(pos), np.concatenate(w), np.concatenate(own)


def _polytope_vertices(halfspaces, dim):
    """Vertices of ``{x : A x + b <= 0}`` (rows ``[A, b]``), or None without interior.

    An interior point comes from a linear program (largest inscribed ball), the
    vertices from ``scipy.spatial.HalfspaceIntersection``.
    """
    from scipy.optimize import linprog
    from scipy.spatial import HalfspaceIntersection

    a, b = halfspaces[:, :dim], halfspaces[:, dim]
    norm = np.linalg.norm(a, axis=1)
    res = linprog(
        np.r_[np.zeros(dim), -1.0],
        A_ub=np.column_stack([a, norm]),
        b_ub=-b,
        bounds=[(None, None)] * dim + [(0, None)],
        method="highs",
    )
    if res.status != 0 or res.x[-1] <= 1e-9:
        return None
    return HalfspaceIntersection(halfspaces, res.x[:dim]).intersections


def _hull_moments(verts, dim):
    """Volume, first moment ``(dim,)`` and ``int |x|^2`` of the hull of ``verts``.

    Sums over a Delaunay triangulation; on a simplex with vertices ``p_i``,
    ``int |x|^2 = vol / ((d + 1) (d + 2)) (sum |p_i|^2 + |sum p_i|^2)``.
    """
    from scipy.spatial import Delaunay

    vol, first, second = 0.0, np.zeros(dim), 0.0
    for simplex in Delaunay(verts).simplices:
        p = verts[simplex]
        v = abs(np.linalg.det(p[1:] - p[0])) / np.prod(np.arange(1, dim + 1))
        vol += v
        first += v * p.mean(axis=0)
        second += (
            v / ((dim + 1) * (dim + 2)) * ((p**2).sum() + (p.sum(axis=0) ** 2).sum())
        )
    return vol, first, second


def _polytope_moments(halfspaces, dim):
    """Volume and first moment of ``{x : A x + b <= 0}`` (rows ``[A, b]``), or zeros."""
    verts = _polytope_vertices(halfspaces, dim)
    if verts is None:
        return 0.0, np.zeros(dim)
    vol, first, _ = _hull_moments(verts, dim)
    return vol, first


def _face_area(verts, normal, offset):
    """Area of the face of the convex hull of ``verts`` (3D) on ``normal . x = offset``.

    The face is the hull of the vertices on the plane (within rounding): they are
    sorted by angle around their mean in the plane and summed by the shoelace formula.
    """
    n = normal / np.linalg.norm(normal)
    dist = verts @ n - offset / np.linalg.norm(normal)
    on = verts[np.abs(dist) <= 1e-9 * (1.0 + np.abs(verts).max())]
    if len(on) < 3:
        return 0.0
    e1 = np.cross(n, [1.0, 0.0, 0.0] if abs(n[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    q = on - on.mean(axis=0)
    u, v = q @ e1, q @ e2
    order = np.argsort(np.arctan2(v, u))
    u, v = u[order], v[order]
    return 0.5 * abs(np.sum(u * np.roll(v, -1) - np.roll(u, -1) * v))


def voxel_pieces(spacing, rel, dcen):
    """Exact pieces of one voxel among power cells, and their facet areas.

    Slot ``a``'s piece is the voxel ``[-h/2, h/2]^3`` (``h = spacing``, coordinates
    ``u`` about its centre) intersected with
    ``{u : |u - s_a|^2 - w_a <= |u - s_b|^2 - w_b}`` for all ``b``, i.e.
    ``2 (s_b - s_a) . u <= dcen_b - dcen_a``, where ``rel[a] = s_a`` (nact, 3) is the
    site relative to the voxel centre and ``dcen[a] = |s_a|^2 - w_a`` its power
    distance at the centre. Each piece is measured with scipy's half-space
    intersection.

    Returns
    -------
    pieces : (nact, 5) float64
        Volume, ``int u_z``, ``int u_y``, ``int u_x``, ``int |u|^2`` of each piece.
    facets : (nact, nact) float64
        Upper triangle: the area of the facet between pieces ``a < b`` (the face of a
        full-dimensional one of the two on their bisector plane); half of it when
        the facet lies on a face of the voxel (the voxel beyond holds the other half).
    """
    h = np.asarray(spacing, dtype=np.float64)
    rel = np.asarray(rel, dtype=np.float64)
    dcen = np.asarray(dcen, dtype=np.float64)
    nact = len(dcen)
    box = np.concatenate(
        [np.column_stack([np.eye(3), -h / 2]), np.column_stack([-np.eye(3), -h / 2])]
    )
    verts = []
    pieces = np.zeros((nact, 5))
    for a in range(nact):
        others = np.arange(nact) != a
        rows = np.column_stack(
            [2.0 * (rel[others] - rel[a]), -(dcen[others] - dcen[a])]
        )
        v = _polytope_vertices(np.concatenate([box, rows]), 3)
        verts.append(v)
        if v is not None:
            vol, first, second = _hull_moments(v, 3)
            pieces[a] = [vol, *first, second]
    facets = np.zeros((nact, nact))
    for a in range(nact):
        for b in range(a + 1, nact):
            v = verts[a] if verts[a] is not None else verts[b]
            if v is None:
                continue
            normal = 2.0 * (rel[b] - rel[a])
            offset = dcen[b] - dcen[a]
            area = _face_area(v, normal, offset)
            axis = np.flatnonzero(np.abs(normal) > 1e-12 * np.abs(normal).sum())
            if len(axis) == 1:
                k = axis[0]
                if np.isclose(abs(offset / normal[k]), h[k] / 2, rtol=1e-9, atol=0):
                    area /= 2.0  # on a face of the voxel
            facets[a, b] = area
    return pieces, facets


def fractional_moments(grid, values, points, weights):
    """Exact masses ``(N,)`` and barycenters ``(N, d)`` of the power cells, each pixel's
    constant density integrated over the part of the pixel in each cell.

    Every pixel is the box ``[lo, hi]``; the part of cell ``i`` in it is the polytope
    ``box ∩ {|x - y_i|^2 - psi_i <= |x - y_j|^2 - psi_j for all j}`` (all images of the
    sites on periodic axes), measured with scipy's half-space intersection. Without
    periodic axes, a pixel whose corners all belong to one cell lies in it (cells are
    convex) and is not clipped.
    """
    pts = _points(grid, points)
    psi = np.asarray(weights, dtype=np.float64).reshape(len(pts))
    v = _values(grid, values)
    n, dim = len(pts), grid.ndim
    sites, sw, owner = _images(grid, pts, psi)
    corner_grid = type(grid)(
        tuple(s + 1 for s in grid.shape),
        spacing=grid.spacing,
        origin=np.array(grid.origin) - np.array(grid.spacing) / 2,
    )
    corner = assign_labels(corner_grid, pts, psi) if not grid.any_periodic else None
    if grid.any_periodic:
        # corner labels with the minimum image (corners may lie on the upper faces)
        c = corner_grid.pixel_centres()
        d = _min_image(grid, c[:, None, :] - pts[None, :, :])
        corner = np.argmin((d**2).sum(-1) - psi[None, :], axis=1).reshape(
            corner_grid.shape
        )
    mass = np.zeros(n)
    first = np.zeros((n, dim))
    vol_pixel = grid.pixel_volume
    h = np.array(grid.spacing)
    for idx in np.ndindex(*grid.shape):
        m = v[idx]
        if m == 0:
            continue
        lo = np.array(grid.origin) + np.array(idx) * h
        hi = lo + h
        corners = corner[tuple(slice(i, i + 2) for i in idx)]
        # (not on periodic grids: a pixel inside one cell can still be split between
        # two images of its site, across the plane half a period away)
        if not grid.any_periodic and (corners == corners.flat[0]).all():
            i = int(corners.flat[0])
            centre = (lo + hi) / 2
            mass[i] += m
            first[i] += m * (pts[i] + _min_image(grid, centre - pts[i]))
            continue
        box = np.concatenate(
            [np.column_stack([np.eye(dim), -hi]), np.column_stack([-np.eye(dim), lo])]
        )
        for s in range(len(sites)):
            others = np.arange(len(sites)) != s
            t = sites[others]
            rows = np.column_stack(
                [
                    2.0 * (t - sites[s]),
                    -((t**2).sum(1) - (sites[s] ** 2).sum() - sw[others] + sw[s]),
                ]
            )
            vol, mom = _polytope_moments(np.concatenate([box, rows]), dim)
            if vol > 0:
                i = owner[s]
                mass[i] += m * vol / vol_pixel
                # first moment about the original site: shift the image back
                first[i] += m / vol_pixel * (mom - vol * (sites[s] - pts[i]))
    bary = np.where(
        mass[:, None] > 0, first / np.where(mass > 0, mass, 1)[:, None], pts
    )
    if grid.any_periodic:
        bary = grid.wrap(bary)
    return mass, bary


def facet_move_rates(grid, rows, cols, vals, pix, points, moves):
    """First-order mass changes ``(N,)`` when the sites move by ``moves``.

    Facet piece ``t`` (cells ``i = rows[t] < j = cols[t]``, Jacobian entry
    ``w = vals[t]``) sits at the centre ``x`` of pixel ``pix[t]`` (flat index):
    ``dm_i += 2 w ((x - y_i).d_i - (x - y_j).d_j)`` and ``dm_j`` loses the same.
    """
    pts = _points(grid, points)
    centres = grid.pixel_centres()
    dm = np.zeros(len(pts))
    for i, j, w, p in zip(rows, cols, vals, pix, strict=True):
        x = centres[p]
        g = (
            2.0
            * w
            * (
                _min_image(grid, x - pts[i]) @ moves[i]
                - _min_image(grid, x - pts[j]) @ moves[j]
            )
        )
        dm[i] += g
        dm[j] -= g
    return dm


# ----------------------------------------------------------------------------------
# anisotropic power diagrams (rasterquant.ot.anisotropic)


def _anisotropic_qform(a, d):
    """``d^T A d`` for displacements ``d`` (..., k) in the kernels' fixed order.

    ``a`` is (k, k); the sum is ``sum_a d_a (A_aa d_a + sum_{b > a} 2 A_ab d_b)``,
    inner terms added left to right, exactly as ``assign._anisotropic._qform``
    (which pads 2D to 3D with a zero row: adding those zeros changes nothing).
    """
    k = a.shape[0]
    total = np.zeros(d.shape[:-1])
    for i in range(k):
        inner = a[i, i] * d[..., i]
        for j in range(i + 1, k):
            inner = inner + (2.0 * a[i, j]) * d[..., j]
        total = total + d[..., i] * inner
    return total


def anisotropic_labels_reference(points, weights, metrics, shape, spacing, periodic):
    """Brute-force anisotropic power labels of every voxel centre.

    Voxel centre ``x`` (origin 0, ``(k + 0.5) * spacing``) goes to
    ``argmin_i min_k (x - y_i - k L)^T A_i (x - y_i - k L) - w_i`` (ties: the lowest
    ``i``), ``k`` over every lattice vector of the periodic axes that can matter:
    with ``d0`` the Euclidean minimum image, the best image ``d`` has
    ``lmin |d|^2 <= d^T A d <= d0^T A d0 <= lmax |d0|^2``, so
    ``|k_a L_a| <= sqrt(lmax / lmin) |d0|_max + L_a / 2``.

    Parameters
    ----------
    points : (N, d) array_like of float
    weights : (N,) array_like of float
    metrics : (N, d, d) array_like of float
        Symmetric positive definite.
    shape : tuple of int
    spacing : float or sequence of float
    periodic : bool or sequence of bool

    Returns
    -------
    (shape) ndarray of int64
    """
    from rasterquant.grid import Grid

    grid = Grid(tuple(shape), spacing=spacing, periodic=periodic)
    pts = _points(grid, points)
    w = np.asarray(weights, dtype=np.float64)
    a = np.asarray(metrics, dtype=np.float64)
    ndim = grid.ndim
    length = grid.lengths
    x = grid.pixel_centres()
    half = [length[k] / 2 if grid.periodic[k] else length[k] for k in range(ndim)]
    dmax = np.sqrt(np.sum(np.square(half)))
    best = np.full(len(x), np.inf)
    label = np.zeros(len(x), np.int64)
    for i in range(len(pts)):
        lam = np.linalg.eigvalsh(a[i])
        reach = np.sqrt(lam[-1] / lam[0]) * dmax
        ranges = []
        for k in range(ndim):
            top = int(np.floor((reach + length[k] / 2) / length[k])) + 1
            ranges.append(range(-top, top + 1) if grid.periodic[k] else range(1))
        shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, ndim)
        fi = np.full(len(x), np.inf)
        for shift in shifts:
            img = pts[i] + shift.astype(np.float64) * length
            fi = np.minimum(fi, _anisotropic_qform(a[i], x - img))
        fi = fi - w[i]
        better = fi < best  # strict: ties keep the lower index
        best[better] = fi[better]
        label[better] = i
    return label.reshape(grid.shape)


def closing_ratios(points, neighbours, delta, tau):
    """How far the step ``tau delta`` closes each cell in, per its half-width.

    For each cell ``i`` with neighbours ``N_i`` (a list of index lists): fit the
    gradient ``g`` of ``delta`` by least squares, ``delta_j - delta_i ~ g.(y_j - y_i)``
    over ``N_i`` (with the tiny ridge of the kernel); the facet to ``j`` then closes
    in by ``tau (delta_j - delta_i - g.(y_j - y_i)) / (2 |y_j - y_i|)``. Returns the
    largest such move (or 0) over half the distance to the nearest neighbour, 0
    without any.
    """
    out = np.zeros(len(points))
    for i, nbrs in enumerate(neighbours):
        nbrs = [j for j in nbrs if j != i and np.any(points[j] != points[i])]
        if not nbrs:
            continue
        e = points[nbrs] - points[i]
        dd = delta[nbrs] - delta[i]
        gram = e.T @ e
        gram = gram + 1e-9 * np.trace(gram) * np.eye(2)
        g = np.linalg.solve(gram, e.T @ dd)
        length = np.linalg.norm(e, axis=1)
        move = max(0.0, float(np.max(tau * (dd - e @ g) / (2.0 * length))))
        out[i] = move / (0.5 * length.min())
    return out


def paint_discs(shape, centres, radii, label):
    """Samples of an (R, C) grid whose centres ``(j + 0.5, k + 0.5)`` lie in the discs.

    Returns an int array: the index of the last disc holding the sample (-1 for none)
    with ``label``, else 1 where some disc holds it and 0 elsewhere.
    """
    jj, kk = np.meshgrid(
        np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij"
    )
    out = np.full(shape, -1 if label else 0, dtype=np.int64)
    for i, ((cy, cx), r) in enumerate(zip(centres, radii, strict=True)):
        if r <= 0:
            continue
        inside = (jj - cy) ** 2 + (kk - cx) ** 2 <= r * r
        out[inside] = i if label else 1
    return out


def label_bounds(lab, cells, n):
    """First and last row and column of the pixels labelled ``cells[k]`` (numpy).

    Four (len(cells),) arrays; a cell without pixels gets ``(H, -1)``, ``(W, -1)``.
    """
    h, w = lab.shape
    out = [np.full(len(cells), h), np.full(len(cells), -1)]
    out += [np.full(len(cells), w), np.full(len(cells), -1)]
    for k, cell in enumerate(cells):
        rr, cc = np.nonzero(lab == cell)
        if rr.size:
            out[0][k], out[1][k] = rr.min(), rr.max()
            out[2][k], out[3][k] = cc.min(), cc.max()
    return tuple(out)
