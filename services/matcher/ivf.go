package matcher

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// IVF: above a size the gallery's rows are split into lists around k-means centres
// and a query scans only the nprobe lists whose centres are nearest. We wrote it
// rather than take a Go HNSW module: the IVF keeps the same int8/residual rows (the
// lists are just the partitions the exact scan already walks), so it costs no memory
// beyond the centres, while a graph index adds M neighbour ids per row (coder/hnsw
// also keeps float32 vectors in maps), which would break the 1.3x memory budget.

// nlistFor picks the number of lists: about sqrt(n), so a list and the centre table
// stay of similar cost, as FAISS's guidance suggests (4*sqrt(n) .. 16*sqrt(n) is
// their range for larger n; we stay at the low end because our scan is cheap).
func nlistFor(n int) int {
	return min(max(int(math.Sqrt(float64(n))), 16), 4096)
}

// probe returns the nprobe lists whose centres score best against q.
func (g *gallery) probe(q []float32, nprobe int) []int32 {
	nl := len(g.parts)
	nprobe = min(max(nprobe, 1), nl)
	scores := make([]float32, nl)
	for l := 0; l < nl; l++ {
		scores[l] = dotFloat32(q, g.centroids[l*g.dim:(l+1)*g.dim])
	}
	h := candHeap{limit: nprobe}
	for l, s := range scores {
		h.offer(cand{score: s, part: int32(l)})
	}
	out := make([]int32, 0, nprobe)
	for _, c := range h.items {
		out = append(out, c.part)
	}
	return out
}

func (g *gallery) nearestList(v []float32) int {
	best, bs := 0, float32(math.Inf(-1))
	for l := 0; l < len(g.parts); l++ {
		if s := dotFloat32(v, g.centroids[l*g.dim:(l+1)*g.dim]); s > bs {
			best, bs = l, s
		}
	}
	return best
}

// buildIVF trains nlist centres by spherical k-means on a sample and moves every
// row into the list of its nearest centre. Assignment, the costly part (n*nlist dot
// products), runs the int8 kernel on all cores. The caller holds the write lock.
func (g *gallery) buildIVF(nlist int, seed uint64) {
	d := g.dim
	n := g.size
	if nlist < 2 || n < nlist*4 {
		return
	}
	// Gather a sample of rows as float32.
	rng := rand.New(rand.NewPCG(seed, 0x1f1f))
	sampleN := min(n, nlist*64)
	sample := make([]float32, sampleN*d)
	type at struct{ p, r int }
	all := make([]at, 0, n)
	for pi, p := range g.parts {
		for r := 0; r < p.len(); r++ {
			all = append(all, at{pi, r})
		}
	}
	for i := 0; i < sampleN; i++ {
		j := i + rng.IntN(len(all)-i)
		all[i], all[j] = all[j], all[i]
		g.rowVector(g.parts[all[i].p], all[i].r, sample[i*d:(i+1)*d])
	}
	cent := make([]float32, nlist*d)
	for l := 0; l < nlist; l++ {
		copy(cent[l*d:(l+1)*d], sample[l*d:(l+1)*d])
	}
	assign := make([]int32, sampleN)
	for iter := 0; iter < 12; iter++ {
		codes, steps := quantizeRows(cent, d)
		assignRows(sample, d, sampleN, codes, steps, assign)
		sums := make([]float64, nlist*d)
		counts := make([]int, nlist)
		for i := 0; i < sampleN; i++ {
			l := int(assign[i])
			counts[l]++
			for k := 0; k < d; k++ {
				sums[l*d+k] += float64(sample[i*d+k])
			}
		}
		for l := 0; l < nlist; l++ {
			if counts[l] == 0 { // re-seed an empty list from a random sample row
				j := rng.IntN(sampleN)
				copy(cent[l*d:(l+1)*d], sample[j*d:(j+1)*d])
				continue
			}
			var ss float64
			for k := 0; k < d; k++ {
				ss += sums[l*d+k] * sums[l*d+k]
			}
			inv := 1 / math.Sqrt(ss)
			for k := 0; k < d; k++ {
				cent[l*d+k] = float32(sums[l*d+k] * inv)
			}
		}
	}
	g.repartition(cent, nlist)
}

// repartition moves every row into the list of its nearest centre.
func (g *gallery) repartition(cent []float32, nlist int) {
	d := g.dim
	codes, steps := quantizeRows(cent, d)
	old := g.parts
	newParts := make([]*partition, nlist)
	for i := range newParts {
		newParts[i] = &partition{}
	}
	for _, p := range old {
		n := p.len()
		if n == 0 {
			continue
		}
		// Assign this partition's rows in one parallel pass over its codes.
		assign := make([]int32, n)
		assignCodes(p.hi, d, n, codes, steps, assign)
		for r := 0; r < n; r++ {
			np := newParts[assign[r]]
			np.hi = append(np.hi, p.hi[r*d:(r+1)*d]...)
			np.lo = append(np.lo, p.lo[r*d:(r+1)*d]...)
			np.units = append(np.units, p.units[r])
			np.owner = append(np.owner, p.owner[r])
			np.ids = append(np.ids, p.ids[r])
		}
		*p = partition{} // free the old rows as we go
	}
	for pi, np := range newParts {
		np.hi = slices.Clip(np.hi)
		np.lo = slices.Clip(np.lo)
		for r, id := range np.ids {
			g.templates[id] = slotRef{int32(pi), int32(r)}
		}
	}
	g.parts = newParts
	g.centroids = cent
	g.centCodes = codes
	g.centSteps = steps
	g.builtAt = g.size
}

// quantizeRows makes int8 codes for n rows of dim d.
func quantizeRows(v []float32, d int) ([]int8, []float32) {
	n := len(v) / d
	codes := make([]int8, n*d)
	steps := make([]float32, n)
	for i := 0; i < n; i++ {
		steps[i] = quantizeQuery(v[i*d:(i+1)*d], codes[i*d:(i+1)*d])
	}
	return codes, steps
}

func assignRows(rows []float32, d, n int, centCodes []int8, centSteps []float32, out []int32) {
	codes, _ := quantizeRows(rows[:n*d], d)
	assignCodes(codes, d, n, centCodes, centSteps, out)
}

// assignCodes sets out[i] to the list whose centre scores best against row i,
// using the int8 kernel (each centre's dot scaled by its own step); the argmax
// matches the float one except on near ties, which only move a row between two
// equally close lists.
func assignCodes(codes []int8, d, n int, centCodes []int8, centSteps []float32, out []int32) {
	nlist := len(centSteps)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]int32, nlist)
			for i := lo; i < hi; i++ {
				dotsInt8(codes[i*d:(i+1)*d], centCodes, d, nlist, buf)
				best, bs := 0, float32(buf[0])*centSteps[0]
				for l := 1; l < nlist; l++ {
					if s := float32(buf[l]) * centSteps[l]; s > bs {
						best, bs = l, s
					}
				}
				out[i] = int32(best)
			}
		}()
	}
	wg.Wait()
}
