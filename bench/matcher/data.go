package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
)

// Synthetic templates shaped like a face model's: identities grouped around
// "demographic" centres (cosine ~0.2 between identity centres of one group, ~0 across
// groups), several templates per identity scattered around its centre (cosine ~0.85 to
// it, so ~0.72 between two templates of one person, as for a good 128-d face model).
type dataSpec struct {
	Dim         int
	Identities  int
	PerIdentity int
	Groups      int
	Queries     int
	Seed        uint64
}

func defaultSpec() dataSpec {
	return dataSpec{Dim: 128, Identities: 200_000, PerIdentity: 5, Groups: 1000, Queries: 1000, Seed: 42}
}

const (
	identitySpread = 2.0  // identity centre = norm(group + 2.0*noise): cos(centres) ~ 0.2
	templateSpread = 0.62 // template = norm(centre + 0.62*noise): cos(template, centre) ~ 0.85
)

func gaussUnit(rng *rand.Rand, dst []float32, base []float32, spread float64) {
	var ss float64
	for i := range dst {
		x := rng.NormFloat64() / math.Sqrt(float64(len(dst))) * spread
		if base != nil {
			x += float64(base[i])
		}
		dst[i] = float32(x)
		ss += x * x
	}
	inv := 1 / math.Sqrt(ss)
	for i := range dst {
		dst[i] = float32(float64(dst[i]) * inv)
	}
}

// generate returns the base rows (identity-major: rows i*PerIdentity.. are identity i)
// and the queries: 90% fresh samples of enrolled identities, 10% of unenrolled ones.
func generate(s dataSpec) (base, queries []float32) {
	d := s.Dim
	rng := rand.New(rand.NewPCG(s.Seed, 1))
	groups := make([]float32, s.Groups*d)
	for g := 0; g < s.Groups; g++ {
		gaussUnit(rng, groups[g*d:(g+1)*d], nil, 1)
	}
	centres := make([]float32, (s.Identities+s.Queries)*d)
	for i := 0; i < s.Identities+s.Queries; i++ {
		g := rng.IntN(s.Groups)
		gaussUnit(rng, centres[i*d:(i+1)*d], groups[g*d:(g+1)*d], identitySpread)
	}
	base = make([]float32, s.Identities*s.PerIdentity*d)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(s.Seed, uint64(100+w)))
			for i := w; i < s.Identities; i += workers {
				for j := 0; j < s.PerIdentity; j++ {
					row := (i*s.PerIdentity + j) * d
					gaussUnit(r, base[row:row+d], centres[i*d:(i+1)*d], templateSpread)
				}
			}
		}()
	}
	wg.Wait()
	queries = make([]float32, s.Queries*d)
	for q := 0; q < s.Queries; q++ {
		id := rng.IntN(s.Identities)
		if q%10 == 9 {
			id = s.Identities + q // an identity that is not enrolled
		}
		gaussUnit(rng, queries[q*d:(q+1)*d], centres[id*d:(id+1)*d], templateSpread)
	}
	return base, queries
}

// writeF32 writes rows as a small header (rows, dim as int32 little-endian) and the
// float32 values, the format bench/matcher/faiss_bench.py reads with numpy.
func writeF32(path string, v []float32, dim int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, 8)
	binary.LittleEndian.PutUint32(hdr, uint32(len(v)/dim))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(dim))
	if _, err := f.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 4*dim*4096)
	for lo := 0; lo < len(v); lo += dim * 4096 {
		hi := min(lo+dim*4096, len(v))
		for i, x := range v[lo:hi] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		if _, err := f.Write(buf[:4*(hi-lo)]); err != nil {
			return err
		}
	}
	return f.Close()
}

// readI32 reads a (rows, cols) int32 matrix written by faiss_bench.py.
func readI32(path string) ([][]int32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return nil, err
	}
	rows, cols := int(binary.LittleEndian.Uint32(hdr)), int(binary.LittleEndian.Uint32(hdr[4:]))
	raw := make([]byte, 4*rows*cols)
	if _, err := io.ReadFull(f, raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([][]int32, rows)
	for r := range out {
		out[r] = make([]int32, cols)
		for c := range out[r] {
			out[r][c] = int32(binary.LittleEndian.Uint32(raw[4*(r*cols+c):]))
		}
	}
	return out, nil
}
