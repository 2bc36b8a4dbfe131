"""Compiled kernels of :mod:`rasterquant.pen`: greedy paths and local search.

Greedy nearest-neighbour paths, 2-opt / Or-opt local search and iterated local
search on an open path, and an exact solver for a few dots.

Every kernel is sequential (``parallel=False``): the local search applies one move
at a time and its result depends on the order of the moves, so it is deterministic
only without threads.

The open path over ``N`` dots is stored as a closed tour over ``M = N + 1`` nodes:
node ``N`` is a *dummy* at distance 0 from every dot, and the path is the tour cut
open at the dummy. A 2-opt move that removes an edge of the dummy is then the
reversal of a prefix or suffix of the path, so both path ends move freely and the
closed-tour moves need no special case. The tour is an array ``tour`` (position ->
node) with its inverse ``pos`` (node -> position); a reversal flips the shorter of
the two arcs, which leaves the undirected cycle the same.
"""

import numpy as np

from ._jit import kernel


@kernel(parallel=False)
def _dist(pts, a, b):
    """Euclidean distance between nodes ``a`` and ``b``; 0 if either is the dummy."""
    n = pts.shape[0]
    if a == n or b == n:
        return 0.0
    dr = pts[a, 0] - pts[b, 0]
    dc = pts[a, 1] - pts[b, 1]
    return np.sqrt(dr * dr + dc * dc)


@kernel(parallel=False)
def _succ(tour, pos, a):
    """Return the node after ``a`` in the array orientation of the tour."""
    i = pos[a] + 1
    if i == tour.shape[0]:
        i = 0
    return tour[i]


@kernel(parallel=False)
def _pred(tour, pos, a):
    """Return the node before ``a`` in the array orientation of the tour."""
    i = pos[a] - 1
    if i < 0:
        i = tour.shape[0] - 1
    return tour[i]


@kernel(parallel=False)
def _reverse(tour, pos, i, j):
    """Reverse the arc of positions ``i, i+1, ..., j`` (cyclic) in place.

    The complementary arc is reversed instead when it is shorter: the undirected
    cycle is the same. ``tour`` (M,) and ``pos`` (M,) are modified in place.
    """
    m = tour.shape[0]
    length = (j - i + m) % m + 1
    if 2 * length > m:
        i, j = (j + 1) % m, (i - 1 + m) % m
        length = m - length
    for _ in range(length // 2):
        a = tour[i]
        b = tour[j]
        tour[i] = b
        pos[b] = i
        tour[j] = a
        pos[a] = j
        i += 1
        if i == m:
            i = 0
        j -= 1
        if j < 0:
            j = m - 1


@kernel(parallel=False)
def _move(tour, pos, a, b, c, d, log, state):
    """2-opt move: replace the edges (a, b), (c, d) by (a, c), (b, d).

    Precondition: ``b = succ(a)`` and ``d = succ(c)``, or ``b = pred(a)`` and
    ``d = pred(c)``, in the array orientation. Modifies ``tour`` and ``pos``.
    The reversed positions are appended to ``log`` (L, 2) int64 at ``state[2]``
    (``state[3] = 1`` once it is full): replaying the same reversals in reverse
    order undoes the moves.
    """
    if _succ(tour, pos, a) == b:
        i, j = pos[b], pos[c]
    else:
        i, j = pos[c], pos[b]
    _reverse(tour, pos, i, j)
    if state[2] < log.shape[0]:
        log[state[2], 0] = i
        log[state[2], 1] = j
        state[2] += 1
    else:
        state[3] = 1


@kernel(parallel=False)
def _or_move(tour, pos, s1, s2, p, q, x, y, reverse, log, state):
    """Move the segment ``s1 .. s2`` (between ``p`` and ``q``) between ``x`` and ``y``.

    Precondition, in the array orientation: ``p, s1, ..., s2, q`` are consecutive
    and ``y = succ(x)`` with ``x, y`` outside the segment. The result has the edge
    ``(p, q)`` and ``x, s2 .. s1, y`` if ``reverse`` else ``x, s1 .. s2, y``; done
    as two or three 2-opt moves (logged, see ``_move``). Modifies ``tour``,
    ``pos``, ``log`` and ``state``.
    """
    _move(tour, pos, p, s1, x, y, log, state)  # p x ... q s2 .. s1 y
    if x != q:
        _move(tour, pos, p, x, q, s2, log, state)  # p q ... x s2 .. s1 y
    if not reverse and s1 != s2:
        _move(tour, pos, x, s2, s1, y, log, state)  # x s1 .. s2 y


@kernel(parallel=False)
def _push(queue, inq, state, a):
    """Append node ``a`` to the circular work queue unless it is already queued.

    ``state[:2]`` is ``[head, count]``; ``queue`` (M,), ``inq`` (M,) and ``state``
    are modified in place.
    """
    if inq[a]:
        return
    m = queue.shape[0]
    queue[(state[0] + state[1]) % m] = a
    state[1] += 1
    inq[a] = True


@kernel(parallel=False)
def _best_two_opt(pts, neigh, tour, pos, a, forward, eps):
    """Best 2-opt move that adds an edge from ``a`` to one of its neighbours.

    With ``forward`` the removed edges are ``(a, succ a)`` and ``(c, succ c)``,
    otherwise ``(a, pred a)`` and ``(c, pred c)``; the dummy ``N`` is a candidate
    ``c`` of every dot. Returns ``(gain, c)``, ``c = -1`` if no move gains > eps.
    """
    n = pts.shape[0]
    k = neigh.shape[1]
    b = _succ(tour, pos, a) if forward else _pred(tour, pos, a)
    dab = _dist(pts, a, b)
    best = eps
    best_c = -1
    for q in range(k + 1):
        c = neigh[a, q] if q < k else n
        g1 = dab - _dist(pts, a, c)
        if g1 <= eps:
            if q < k:
                continue  # sorted by distance: only the dummy can follow
            break
        d = _succ(tour, pos, c) if forward else _pred(tour, pos, c)
        if c == b or d == a:
            continue
        gain = g1 + _dist(pts, c, d) - _dist(pts, b, d)
        if gain > best:
            best = gain
            best_c = c
    return best, best_c


@kernel(parallel=False)
def _best_or_opt(pts, neigh, tour, pos, a, seg_len, forward, eps):
    """Best Or-opt move of the ``seg_len`` dots starting (or ending) at ``a``.

    The segment is ``a, succ a, ...`` with ``forward``, else ``..., pred a, a``;
    it is re-inserted, either way round, beside a neighbour ``c`` of ``a`` (or
    the dummy). Returns ``(gain, s1, s2, x, reverse)`` in the array orientation
    (``x = -1`` if no move gains > eps).
    """
    n = pts.shape[0]
    m = n + 1
    k = neigh.shape[1]
    none = (eps, -1, -1, -1, False)
    if m < seg_len + 3:
        return none
    s1 = a
    s2 = a
    for _ in range(seg_len - 1):
        if forward:
            s2 = _succ(tour, pos, s2)
        else:
            s1 = _pred(tour, pos, s1)
    p = _pred(tour, pos, s1)
    q = _succ(tour, pos, s2)
    # segment members (at most 3)
    m1 = _succ(tour, pos, s1) if seg_len == 3 else s1
    removed = _dist(pts, p, s1) + _dist(pts, s2, q) - _dist(pts, p, q)
    if removed <= eps:
        return none
    best = eps
    best_s1 = -1
    best_s2 = -1
    best_x = -1
    best_rev = False
    at_start = a == s1
    for j in range(k + 1):
        c = neigh[a, j] if j < k else n
        dac = _dist(pts, a, c)
        if removed - dac <= eps:
            if j < k:
                continue
            break
        if c == s1 or c == s2 or c == m1:
            continue
        # insert with a next to c: c on the x side or on the y side
        for side in range(2):
            if side == 0:
                x = c
                y = _succ(tour, pos, c)
                if y == s1 or y == s2 or y == m1:
                    continue
                # x, a, ..., y: a == s1 -> not reversed; a == s2 -> reversed
                rev = not at_start
            else:
                x = _pred(tour, pos, c)
                y = c
                if x == s1 or x == s2 or x == m1:
                    continue
                rev = at_start  # x, ..., a, y
            if rev:
                added = _dist(pts, x, s2) + _dist(pts, s1, y) - _dist(pts, x, y)
            else:
                added = _dist(pts, x, s1) + _dist(pts, s2, y) - _dist(pts, x, y)
            gain = removed - added
            if gain > best:
                best = gain
                best_s1 = s1
                best_s2 = s2
                best_x = x
                best_rev = rev
    return best, best_s1, best_s2, best_x, best_rev


@kernel(parallel=False)
def _local_search(pts, neigh, tour, pos, queue, inq, state, log, max_pops, eps):
    """2-opt and Or-opt (segments of 1-3 dots) with neighbour lists and a work queue.

    Parameters: ``pts`` (N, 2) float64; ``neigh`` (N, K) int64 nearest neighbours
    sorted by distance; ``tour``/``pos`` (N + 1,) int64 (node ``N`` is the dummy);
    ``queue`` (N + 1,) int64, ``inq`` (N + 1,) bool and ``state`` (4,) int64
    ``[head, count, n_log, log_full]``: the nodes still to examine (don't-look
    bits) and the reversal log (``log`` (L, 2) int64, see ``_move``). Examines at
    most ``max_pops`` nodes, applying for each the best improving move found
    around it and queueing the ends of the changed edges. ``tour``, ``pos``,
    ``queue``, ``inq``, ``state`` and ``log`` are modified in place. Returns the
    number of moves applied and their total gain; the search is finished when
    ``state[1] == 0``.
    """
    n = pts.shape[0]
    m = n + 1
    moves = 0
    total = 0.0
    pops = 0
    # the best move: kind (1, 2: 2-opt backward, forward; 3: Or-opt), then c or
    # (s1, s2, x, reverse); an array, so that no call sees a literal constant
    # (numba would compile one more version of the callee for it)
    mv = np.zeros(5, np.int64)
    while state[1] > 0 and pops < max_pops:
        a = queue[state[0]]
        state[0] = (state[0] + 1) % m
        state[1] -= 1
        inq[a] = False
        pops += 1
        if a == n:
            continue
        best = eps
        mv[0] = 0
        for fwd in range(2):
            g, c = _best_two_opt(pts, neigh, tour, pos, a, fwd == 1, eps)
            if g > best:
                best = g
                mv[0] = 1 + fwd
                mv[1] = c
        for seg_len in range(1, 4):
            for fwd in range(2):
                if seg_len == 1 and fwd == 0:
                    continue
                g, s1, s2, x, rev = _best_or_opt(
                    pts, neigh, tour, pos, a, seg_len, fwd == 1, eps
                )
                if g > best:
                    best = g
                    mv[0] = 3
                    mv[1] = s1
                    mv[2] = s2
                    mv[3] = x
                    mv[4] = rev
        if mv[0] == 0:
            continue
        moves += 1
        total += best
        if mv[0] <= 2:
            forward = mv[0] == 2
            c = mv[1]
            b = _succ(tour, pos, a) if forward else _pred(tour, pos, a)
            d = _succ(tour, pos, c) if forward else _pred(tour, pos, c)
            _move(tour, pos, a, b, c, d, log, state)
            _push(queue, inq, state, a)
            _push(queue, inq, state, b)
            _push(queue, inq, state, c)
            _push(queue, inq, state, d)
        else:
            s1 = mv[1]
            s2 = mv[2]
            x = mv[3]
            p = _pred(tour, pos, s1)
            q = _succ(tour, pos, s2)
            y = _succ(tour, pos, x)
            _or_move(tour, pos, s1, s2, p, q, x, y, mv[4] != 0, log, state)
            for v in (p, q, x, y, s1, s2):
                _push(queue, inq, state, v)
    return moves, total


@kernel(parallel=False)
def _nearest_path(pts, neigh, first, items, cell, nx, lo, cs, start):
    """Greedy nearest-neighbour path from dot ``start``: (N,) int64 visiting order.

    Parameters: ``pts`` (N, 2) float64; ``neigh`` (N, K) int64 nearest neighbours
    sorted by distance; a bucket grid of ``ncell = ny * nx`` square cells of side
    ``cs`` with corner ``lo`` (2,): ``first`` (ncell + 1,) int64 offsets into
    ``items`` (N,) int64 (dots grouped by cell) and ``cell`` (N,) int64 the cell
    of each dot. The next dot is the first unvisited one in the neighbour list
    (the exact nearest, as the list is sorted); when all are visited, a ring
    search of the grid over the unvisited dots finds it. Ties go to the dot met
    first. Nothing is modified in place.
    """
    n = pts.shape[0]
    k = neigh.shape[1]
    ncell = first.shape[0] - 1
    ny = ncell // nx
    items = items.copy()
    slot = np.empty(n, np.int64)
    live = np.empty(ncell, np.int64)
    row_live = np.zeros(ny, np.int64)
    for c in range(ncell):
        live[c] = first[c + 1] - first[c]
        row_live[c // nx] += live[c]
        for s in range(first[c], first[c + 1]):
            slot[items[s]] = s
    visited = np.zeros(n, np.bool_)
    order = np.empty(n, np.int64)
    cur = start
    for t in range(n):
        order[t] = cur
        visited[cur] = True
        # swap-remove cur from the live part of its cell
        c = cell[cur]
        last = first[c] + live[c] - 1
        other = items[last]
        s = slot[cur]
        items[s] = other
        slot[other] = s
        items[last] = cur
        slot[cur] = last
        live[c] -= 1
        row_live[c // nx] -= 1
        if t == n - 1:
            break
        nxt = -1
        for j in range(k):
            if not visited[neigh[cur, j]]:
                nxt = neigh[cur, j]
                break
        if nxt < 0:
            nxt = _grid_nearest(pts, first, items, live, row_live, nx, c, cs, cur)
        cur = nxt
    return order


@kernel(parallel=False)
def _grid_nearest(pts, first, items, live, row_live, nx, c0, cs, p):
    """Nearest live dot to dot ``p`` (in cell ``c0``) by rings of grid cells."""
    ncell = first.shape[0] - 1
    ny = ncell // nx
    ci = c0 // nx
    cj = c0 % nx
    best = np.inf
    best_i = -1
    r0 = pts[p, 0]
    r1 = pts[p, 1]
    for ring in range(max(nx, ny) + 1):
        for i in range(max(ci - ring, 0), min(ci + ring, ny - 1) + 1):
            if row_live[i] == 0:
                continue
            if i == ci - ring or i == ci + ring:
                j_lo = max(cj - ring, 0)
                j_hi = min(cj + ring, nx - 1)
                step = 1
            else:  # a middle row of the ring: its two side cells only
                j_lo = cj - ring
                j_hi = cj + ring
                step = max(2 * ring, 1)
            for j in range(j_lo, j_hi + 1, step):
                if j < 0 or j >= nx:
                    continue
                c = i * nx + j
                for s in range(first[c], first[c] + live[c]):
                    v = items[s]
                    d0 = pts[v, 0] - r0
                    d1 = pts[v, 1] - r1
                    d2 = d0 * d0 + d1 * d1
                    if d2 < best:
                        best = d2
                        best_i = v
        if best_i >= 0 and best <= (ring * cs) ** 2:
            break
    return best_i


@kernel(parallel=False)
def _exact_path(pts):
    """Shortest open path through all N dots (either end free), by Held-Karp.

    ``pts`` (N, 2) float64 with ``1 <= N`` small (``O(2^N N^2)`` time, ``O(2^N N)``
    memory). Returns the visiting order (N,) int64; ties go to the lower index.
    """
    n = pts.shape[0]
    full = (1 << n) - 1
    cost = np.full((full + 1, n), np.inf)
    parent = np.full((full + 1, n), -1, np.int64)
    for j in range(n):
        cost[1 << j, j] = 0.0
    for s in range(1, full + 1):
        for j in range(n):
            if not (s >> j) & 1 or cost[s, j] == np.inf:
                continue
            for t in range(n):
                if (s >> t) & 1:
                    continue
                c = cost[s, j] + _dist(pts, j, t)
                u = s | (1 << t)
                if c < cost[u, t]:
                    cost[u, t] = c
                    parent[u, t] = j
    end = 0
    for j in range(1, n):
        if cost[full, j] < cost[full, end]:
            end = j
    order = np.empty(n, np.int64)
    s = full
    j = end
    for t in range(n - 1, -1, -1):
        order[t] = j
        i = parent[s, j]
        s = s & ~(1 << j)
        j = i
    return order


@kernel(parallel=False)
def _perturb(pts, neigh, tour, pos, queue, inq, state, log, kicks, eps):
    """Improve the tour by segment-swap kicks, each repaired or undone.

    ``kicks`` (K, 3) int64 rows ``(i, l1, l2)`` drawn by the caller: kick ``t``
    swaps the ``l1`` nodes after position ``i`` with the ``l2`` nodes after them
    (a double-bridge move on a window of the tour; windows past the end of the
    array are clipped). The ends of the changed edges are queued and
    :func:`_local_search` runs to the end; the result is kept if the tour is
    shorter, otherwise the logged reversals are replayed backwards and the window
    restored. The queue must be empty on entry (``state[1] == 0``). Other
    arguments as in :func:`_local_search`; ``tour``, ``pos``, ``queue``, ``inq``,
    ``state`` and ``log`` are modified in place. Returns ``(accepted, gain)``:
    kicks kept and the total shortening.
    """
    m = tour.shape[0]
    accepted = 0
    gained = 0.0
    buf = np.empty(m, np.int64)
    for t in range(kicks.shape[0]):
        i = kicks[t, 0]
        l1 = kicks[t, 1]
        l2 = kicks[t, 2]
        if i + l1 + l2 + 1 >= m:
            continue
        j = i + l1  # B = (i, j], C = (j, k]
        k = j + l2
        a, b1, b2 = tour[i], tour[i + 1], tour[j]
        c1, c2, d = tour[j + 1], tour[k], tour[k + 1]
        delta = (
            _dist(pts, a, c1)
            + _dist(pts, c2, b1)
            + _dist(pts, b2, d)
            - _dist(pts, a, b1)
            - _dist(pts, b2, c1)
            - _dist(pts, c2, d)
        )
        w = k - i
        for r in range(w):
            buf[r] = tour[i + 1 + r]
        for r in range(l2):
            tour[i + 1 + r] = buf[l1 + r]
        for r in range(l1):
            tour[i + 1 + l2 + r] = buf[r]
        for r in range(i + 1, k + 1):
            pos[tour[r]] = r
        state[2] = 0
        state[3] = 0
        for v in (a, b1, b2, c1, c2, d):
            _push(queue, inq, state, v)
        _, gain = _local_search(
            pts, neigh, tour, pos, queue, inq, state, log, m * m, eps
        )
        if delta - gain < -eps or state[3] == 1:
            accepted += 1
            gained += gain - delta
            continue
        for e in range(state[2] - 1, -1, -1):
            _reverse(tour, pos, log[e, 0], log[e, 1])
        for r in range(w):
            tour[i + 1 + r] = buf[r]
            pos[buf[r]] = i + 1 + r
    return accepted, gained
