"""Named defaults shared by the kernels and the solvers."""

#: fastmath flags for every kernel. Only "nsz": the value-changing flags ("reassoc",
#: "contract", "arcp", "afn") let LLVM round differently depending on what it inlines,
#: and a kernel compiled in this process inlines its callees while one loaded from
#: numba's cache calls their cached code, so a first (compiling) run gave other numbers
#: than later runs (tests/test_determinism.py). Never "nnan"/"ninf" either: kernels
#: use np.inf sentinels.
FASTMATH = frozenset({"nsz"})

#: number of reduction chunks; fixed so results do not depend on the thread count.
N_CHUNKS = 32

#: tile shape (z, y, x) of the assignment sweep for 2D rasters (z == 1) and 3D rasters.
TILE_2D = (1, 32, 32)
TILE_3D = (8, 16, 16)
#: candidate lists test every (tile, site) pair, instead of kd-tree range queries,
#: up to this many pairs
BRUTE_CANDIDATES_MAX = 2e7
#: sub-tiles on which the kernel prunes the tile's candidates with exact box bounds
SUB_2D = (1, 8, 16)
SUB_3D = (4, 4, 16)
#: smaller sub-tiles for fractional passes, whose per-pixel work grows with the
#: candidates left after pruning (boundary pixels test every one of them)
SUB_2D_FRACTIONAL = (1, 4, 8)
SUB_3D_FRACTIONAL = (4, 4, 16)

#: default relative mass tolerance of solve_ot.
DEFAULT_TOL = 1e-2
DEFAULT_MAX_ITER = 100

#: smallest Newton damping step before the solver declares a stall.
MIN_STEP = 2.0**-12
#: ... with centre quadrature (whole-pixel masses; ot/newton.min_step)
MIN_STEP_PIXELS = 2.0**-6
#: the damped Newton's halvings start from this many times the last accepted step
STEP_GROWTH = 4.0
#: empty-cell repair: one kd-tree of the pixel centres when the cells to raise times
#: this many pixels reach the raster's pixel count, else a window search per cell
REPAIR_TREE_PIXELS = 2000
#: uniform Lloyd: the weights follow the moved sites to first order when no site
#: moved further than this many pixels (longer first moves keep the power distance
#: at the barycenters instead)
LINEAR_MOVE_PIXELS = 2.0
#: longer moves take this share of the first-order weights, the rest keeping the power
#: distance at the barycenters
LONG_MOVE_BLEND = 0.6
BLEND_MOVE_PIXELS = 8.0
#: geometric (uniform density) Newton steps change no weight by more than this many
#: squared mean cell sizes ``(volume / N)^(2/d)``
GEOMETRIC_MAX_STEP = 16.0

#: N above which the Newton linear system is solved by AMG-preconditioned CG instead
#: of SuperLU, by dimension (benchmarks/bench_linear.py). In 2D a factorisation,
#: reused as the preconditioner of the next steps, beats AMG up to the largest N
#: measured; 3D cell graphs fill in much more under factorisation
DIRECT_SOLVE_MAX_N = {2: 200000, 3: 2000}

#: conjugate-gradient iterations preconditioned by the last factorisation or AMG
#: hierarchy that a Newton step tries before it builds its own
PCG_MAX_ITER = 20
#: AMG (smoothed aggregation): largest coarsest level (solved by a pseudo-inverse),
#: the iterations a CG solve with a new hierarchy may take before the system is
#: declared inconsistent (then factorised), and the seed of pyamg's spectral radius
#: estimate (which draws from numpy's global generator)
AMG_MAX_COARSE = 500
AMG_MAX_ITER = 200
AMG_SEED = 0
#: forcing term (relative residual of the Newton direction) while the mass error is
#: above 1: damped steps, far from the quadratic phase
DAMPED_FORCING = 0.1

#: slack (in mean cell areas) of the first candidate lists on a raster started from a
#: coarser one: room for its first Newton step, so the lists are built once
FINE_START_SLACK = 2.0
#: 3D multiscale start: coarse levels with fewer voxels a cell get only the centre
#: solve (ot/newton._centre_only; bench_voxels3d.py: 128^3, N = 1,000 drops its
#: 32^3 split-voxel solve)
SPLIT_START_VOXELS = 64

#: relative residual of the CG solve of Lloyd's first-order weight predictor. A stale
#: factorisation alone (no CG) doubles the stippling benchmark's time; 1e-3 costs
#: more CG steps than it saves Newton steps (benchmarks/bench_stipple.py: 15.2 s at
#: 1e-3, 14.2 s at 1e-2, 13.9 s at 3e-2, 15.5 s at 1e-1)
PREDICTOR_CG_RTOL = 3e-2

#: maximum rounds of the empty-cell repair of starting weights.
MAX_REPAIR_ROUNDS = 200
#: ...and stop early when this many rounds pass without fewer empty cells than the
#: fewest seen before
REPAIR_PATIENCE = 20

#: default memory budget in bytes used to refuse huge problems before allocating.
MEMORY_FRACTION = 0.8

#: default pixel quadrature: "fractional" splits boundary pixels exactly (continuous
#: masses, quadratic Newton); it reaches a given tolerance faster than "center" in every
#: benchmark of benchmarks/run.py, so it is the default (issue 7).
DEFAULT_QUADRATURE = "fractional"
#: cold solves on densities with zero pixels: the multiscale start levels (and this
#: raster itself, as the last of them) raise zero pixels to this fraction of the
#: largest pixel density (see ``ot.newton._multiscale_start``); 0 turns this off
ZERO_DENSITY_FLOOR = 1e-4
