package matcher

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Match is one person in a search result: the score of their best template.
type Match struct {
	PersonID   string
	TemplateID string
	Score      float32
}

// SearchMode chooses between the exact scan and the IVF index.
type SearchMode int

const (
	// ModeAuto uses the IVF index when the gallery has one, else the exact scan.
	ModeAuto SearchMode = iota
	// ModeExact always scans every row.
	ModeExact
	// ModeApproximate uses the IVF index when there is one (exact otherwise).
	ModeApproximate
)

// SearchParams are the options of one search; they apply to every query of a batch.
type SearchParams struct {
	K         int
	Threshold float32  // persons scoring below it are left out
	Groups    []string // keep only persons in any of these groups; empty: everyone
	Mode      SearchMode
	NProbe    int // IVF lists to scan; 0: the index's default
}

const (
	scanBlockRows  = 256  // rows scored per kernel call: 32 KiB of codes at dim 128
	scanChunkRows  = 8192 // rows per unit of parallel work
	parallelMinRow = 32768
)

// work is one unit of a scan: rows [lo, hi) of a partition, scored for a set of queries.
type work struct {
	part    int32
	lo, hi  int
	queries []int32
}

type preparedQuery struct {
	vec  []float32
	code []int8
}

// candidateLimit is how many approximate candidates a query keeps for re-ranking:
// enough that int8 rounding (a few thousandths of cosine) cannot push a true top-k
// person out, and that a person's several templates do not crowd others out.
func candidateLimit(k int) int { return max(4*k+64, 64) }

// search runs a batch of normalised queries. The caller holds the read lock.
func (g *gallery) search(ctx context.Context, queries [][]float32, p SearchParams, defaultNProbe int, workers int) ([][]Match, error) {
	out := make([][]Match, len(queries))
	if p.K <= 0 || g.size == 0 {
		for i := range out {
			out[i] = []Match{}
		}
		return out, nil
	}
	prepared := make([]preparedQuery, len(queries))
	for i, q := range queries {
		code := make([]int8, g.dim)
		quantizeQuery(q, code)
		prepared[i] = preparedQuery{vec: q, code: code}
	}
	allowed := g.allowedPersons(p.Groups)
	useIVF := g.centroids != nil && p.Mode != ModeExact
	nprobe := p.NProbe
	if nprobe <= 0 {
		nprobe = defaultNProbe
	}
	if nprobe <= 0 {
		nprobe = max(len(g.parts)/8, 1)
	}

	pending := make([]int32, len(queries))
	for i := range pending {
		pending[i] = int32(i)
	}
	limit := candidateLimit(p.K)
	for len(pending) > 0 {
		items := g.plan(prepared, pending, useIVF, nprobe)
		heaps, err := g.scan(ctx, prepared, items, allowed, limit, workers)
		if err != nil {
			return nil, err
		}
		var retry []int32
		for _, qi := range pending {
			res, truncated := g.finish(prepared[qi].vec, heaps, qi, p, limit)
			if truncated && limit < g.size {
				retry = append(retry, qi)
				continue
			}
			if len(res) > p.K {
				res = res[:p.K]
			}
			out[qi] = res
		}
		pending = retry
		limit *= 8
	}
	return out, nil
}

// plan lists the work items: every partition for the exact scan, or for IVF the
// probed lists, each with the queries that probe it (so a batch reads a list once).
func (g *gallery) plan(qs []preparedQuery, pending []int32, useIVF bool, nprobe int) []work {
	byPart := make([][]int32, len(g.parts))
	if useIVF {
		for _, qi := range pending {
			for _, l := range g.probe(qs[qi].vec, nprobe) {
				byPart[l] = append(byPart[l], qi)
			}
		}
	} else {
		for i := range byPart {
			byPart[i] = pending
		}
	}
	var items []work
	for pi, qis := range byPart {
		n := g.parts[pi].len()
		if len(qis) == 0 || n == 0 {
			continue
		}
		for lo := 0; lo < n; lo += scanChunkRows {
			items = append(items, work{part: int32(pi), lo: lo, hi: min(lo+scanChunkRows, n), queries: qis})
		}
	}
	return items
}

// scan runs the items on up to workers goroutines; each keeps its own heaps, one
// per query, so the hot loop shares nothing.
func (g *gallery) scan(ctx context.Context, qs []preparedQuery, items []work, allowed []uint64, limit, workers int) ([][]candHeap, error) {
	rows := 0
	for _, it := range items {
		rows += (it.hi - it.lo) * len(it.queries)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(items), max(1, rows/parallelMinRow))
	workers = max(workers, 1)
	heaps := make([][]candHeap, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	var cancelled atomic.Bool
	run := func(w int) {
		hs := make([]candHeap, len(qs))
		for i := range hs {
			hs[i].limit = limit
		}
		buf := make([]int32, scanBlockRows)
		idx := make([]int32, scanBlockRows)
		for {
			i := int(next.Add(1) - 1)
			if i >= len(items) {
				break
			}
			if ctx.Err() != nil {
				cancelled.Store(true)
				break
			}
			g.scanItem(qs, items[i], allowed, hs, buf, idx)
		}
		heaps[w] = hs
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); run(w) }()
	}
	run(0)
	wg.Wait()
	if cancelled.Load() {
		return nil, ctx.Err()
	}
	return heaps, nil
}

func (g *gallery) scanItem(qs []preparedQuery, it work, allowed []uint64, hs []candHeap, buf, idx []int32) {
	p := g.parts[it.part]
	d := g.dim
	for b := it.lo; b < it.hi; b += scanBlockRows {
		nb := min(scanBlockRows, it.hi-b)
		codes := p.hi[b*d : (b+nb)*d]
		units := p.units[b : b+nb]
		owners := p.owner[b : b+nb]
		for _, qi := range it.queries {
			dotsInt8(qs[qi].code, codes, d, nb, buf)
			h := &hs[qi]
			// Only rows above the heap's weakest can enter it; the filter finds them
			// (16 rows per instruction where AVX-512 is there).
			thr := float32(math.Inf(-1))
			if len(h.items) == h.limit {
				thr = h.min()
			}
			n := filterAbove(buf[:nb], units, thr, idx)
			if len(h.items) == h.limit && n < nb {
				h.full = true
			}
			for _, j := range idx[:n] {
				s := float32(buf[j]) * units[j]
				if len(h.items) == h.limit && s <= h.min() {
					h.full = true
					continue
				}
				if allowed != nil {
					o := owners[j]
					if allowed[o>>6]&(1<<(o&63)) == 0 {
						continue
					}
				}
				h.offer(cand{score: s, part: it.part, row: int32(b) + j})
			}
		}
	}
}

// finish re-ranks a query's candidates in float32 against the 16-bit rows, keeps
// each person's best template, applies the threshold and sorts. The workers' heaps
// together hold the global top-limit rows by approximate score; only those are
// re-ranked. truncated says rows were dropped while fewer than k persons were kept,
// so a top-k person may be missing (crowded out by another's many templates): the
// caller then searches again with larger heaps.
func (g *gallery) finish(q []float32, heaps [][]candHeap, qi int32, p SearchParams, limit int) ([]Match, bool) {
	var cands []cand
	dropped := false
	for _, hs := range heaps {
		h := &hs[qi]
		dropped = dropped || h.full
		cands = append(cands, h.items...)
	}
	if len(cands) > limit {
		slices.SortFunc(cands, func(a, b cand) int {
			switch {
			case a.score > b.score:
				return -1
			case a.score < b.score:
				return 1
			}
			return 0
		})
		cands = cands[:limit]
		dropped = true
	}
	best := make(map[int32]Match, len(cands))
	d := g.dim
	for _, c := range cands {
		part := g.parts[c.part]
		r := int(c.row)
		o := part.owner[r]
		s := dotFixed(q, part.hi[r*d:(r+1)*d], part.lo[r*d:(r+1)*d], part.units[r])
		if m, ok := best[o]; ok && m.Score >= s {
			continue
		}
		best[o] = Match{PersonID: g.persons[o].id, TemplateID: part.ids[r], Score: s}
	}
	truncated := dropped && len(best) < p.K
	res := make([]Match, 0, len(best))
	for _, m := range best {
		if m.Score >= p.Threshold {
			res = append(res, m)
		}
	}
	slices.SortFunc(res, compareMatches)
	return res, truncated
}

// compareMatches orders by score, best first, ties by person id for stable results.
func compareMatches(a, b Match) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	case a.PersonID < b.PersonID:
		return -1
	case a.PersonID > b.PersonID:
		return 1
	}
	return 0
}
