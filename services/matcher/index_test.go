package matcher

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

const testModel = "mobilefacenet-128d@1"

func randomUnit(rng *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	var ss float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		ss += x * x
	}
	for i := range v {
		v[i] = float32(float64(v[i]) / math.Sqrt(ss))
	}
	return v
}

// randomGallery makes persons with 1..4 templates each, every person in one of
// the groups g0..g3, and returns the templates and each person's groups.
func randomGallery(rng *rand.Rand, persons, dim int) ([]Template, map[string][]string) {
	var ts []Template
	groups := map[string][]string{}
	for p := 0; p < persons; p++ {
		pid := fmt.Sprintf("p%05d", p)
		groups[pid] = []string{fmt.Sprintf("g%d", p%4)}
		for j := 0; j <= rng.IntN(4); j++ {
			ts = append(ts, Template{ID: fmt.Sprintf("%s-t%d", pid, j), PersonID: pid, ModelID: testModel, Vector: randomUnit(rng, dim)})
		}
	}
	return ts, groups
}

// bruteForce is the float64 reference: best template per person, threshold, group
// filter, top k.
func bruteForce(ts []Template, groups map[string][]string, q []float32, k int, thr float32, filter []string) []Match {
	best := map[string]Match{}
	for _, t := range ts {
		if len(filter) > 0 && !slices.ContainsFunc(groups[t.PersonID], func(g string) bool { return slices.Contains(filter, g) }) {
			continue
		}
		var s float64
		for i := range q {
			s += float64(q[i]) * float64(t.Vector[i])
		}
		if m, ok := best[t.PersonID]; !ok || float64(m.Score) < s {
			best[t.PersonID] = Match{PersonID: t.PersonID, TemplateID: t.ID, Score: float32(s)}
		}
	}
	var out []Match
	for _, m := range best {
		if m.Score >= thr {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return compareMatches(out[i], out[j]) < 0 })
	return out[:min(k, len(out))]
}

// requireSameMatches compares with the reference allowing only reorderings among
// scores within 1e-4 (the 16-bit rows hold cosines to about 1e-5).
func requireSameMatches(t *testing.T, want, got []Match, msg string) {
	t.Helper()
	require.Len(t, got, len(want), msg)
	for i := range want {
		require.InDelta(t, want[i].Score, got[i].Score, 1e-4, "%s rank %d", msg, i)
		if want[i].PersonID != got[i].PersonID {
			require.InDelta(t, want[i].Score, got[i].Score, 1e-4, "%s rank %d: %s vs %s", msg, i, want[i].PersonID, got[i].PersonID)
			continue
		}
		require.Equal(t, want[i].TemplateID, got[i].TemplateID, "%s rank %d", msg, i)
	}
}

func newLoadedIndex(t *testing.T, cfg IndexConfig, ws string, ts []Template, groups map[string][]string) *Index {
	t.Helper()
	ix := NewIndex(cfg)
	for p, gs := range groups {
		ix.SetPersonGroups(ws, p, gs)
	}
	prepared, err := ix.Prepare(ws, ts)
	require.NoError(t, err)
	require.NoError(t, ix.Add(ws, prepared))
	return ix
}

func TestExactSearchMatchesFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const dim = 128
	ts, groups := randomGallery(rng, 1500, dim)
	queries := make([][]float32, 12)
	for i := range queries {
		if i%2 == 0 { // near an enrolled template, like a real probe
			base := ts[rng.IntN(len(ts))].Vector
			noise := randomUnit(rng, dim)
			for j := range base {
				noise[j] = base[j] + 0.6*noise[j]
			}
			queries[i] = noise
		} else {
			queries[i] = randomUnit(rng, dim)
		}
	}
	for _, kernel := range []string{"generic", "avx2", "avx512vnni"} {
		restore := setKernel(kernel)
		ix := newLoadedIndex(t, IndexConfig{}, "ws", ts, groups)
		for _, tc := range []struct {
			name   string
			k      int
			thr    float32
			groups []string
		}{
			{"top1", 1, -1, nil},
			{"top10", 10, -1, nil},
			{"top100", 100, -1, nil},
			{"threshold", 50, 0.2, nil},
			{"group", 10, -1, []string{"g1"}},
			{"two groups", 20, -1, []string{"g0", "g3"}},
			{"unknown group", 10, -1, []string{"nope"}},
			{"k above size", 5000, -1, nil},
		} {
			t.Run(kernel+"/"+tc.name, func(t *testing.T) {
				got, err := ix.Search(context.Background(), "ws", testModel, queries, SearchParams{K: tc.k, Threshold: tc.thr, Groups: tc.groups, Mode: ModeExact})
				require.NoError(t, err)
				for qi, q := range queries {
					want := bruteForce(ts, groups, normalizedCopy(q), tc.k, tc.thr, tc.groups)
					requireSameMatches(t, want, got[qi], fmt.Sprintf("query %d", qi))
					// A batch answers each query as a single search would.
					one, err := ix.Search(context.Background(), "ws", testModel, [][]float32{q}, SearchParams{K: tc.k, Threshold: tc.thr, Groups: tc.groups, Mode: ModeExact})
					require.NoError(t, err)
					require.Equal(t, got[qi], one[0])
				}
			})
		}
		restore()
	}
}

func normalizedCopy(v []float32) []float32 {
	out, err := normalized(v, 0)
	if err != nil {
		panic(err)
	}
	return out
}

// TestParallelScanMatchesReference uses enough rows for the scan to split across
// goroutines and for one person's many templates to crowd the candidate heap.
func TestParallelScanMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const dim = 128
	var ts []Template
	groups := map[string][]string{}
	for i := 0; i < 70_000; i++ {
		pid := fmt.Sprintf("p%d", i%20_000)
		ts = append(ts, Template{ID: fmt.Sprint("t", i), PersonID: pid, ModelID: testModel, Vector: randomUnit(rng, dim)})
	}
	// One person with 300 templates all close to the first query.
	q0 := randomUnit(rng, dim)
	for j := 0; j < 300; j++ {
		v := randomUnit(rng, dim)
		for i := range v {
			v[i] = q0[i] + 0.2*v[i]
		}
		ts = append(ts, Template{ID: fmt.Sprint("crowd", j), PersonID: "crowd", ModelID: testModel, Vector: normalizedCopy(v)})
	}
	ix := newLoadedIndex(t, IndexConfig{Workers: 2}, "ws", ts, groups)
	queries := [][]float32{q0, randomUnit(rng, dim), randomUnit(rng, dim)}
	got, err := ix.Search(context.Background(), "ws", testModel, queries, SearchParams{K: 30, Threshold: -1, Mode: ModeExact})
	require.NoError(t, err)
	for qi, q := range queries {
		requireSameMatches(t, bruteForce(ts, groups, q, 30, -1, nil), got[qi], fmt.Sprint("query ", qi))
	}
}

func TestSearchEdgeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	ts, groups := randomGallery(rng, 50, 128)
	ix := newLoadedIndex(t, IndexConfig{}, "ws", ts, groups)
	ctx := context.Background()
	q := randomUnit(rng, 128)

	t.Run("k=0 gives no matches", func(t *testing.T) {
		got, err := ix.Search(ctx, "ws", testModel, [][]float32{q}, SearchParams{K: 0})
		require.NoError(t, err)
		require.Empty(t, got[0])
	})
	t.Run("empty workspace gives no matches", func(t *testing.T) {
		got, err := ix.Search(ctx, "other", testModel, [][]float32{q}, SearchParams{K: 5, Threshold: -1})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Empty(t, got[0])
	})
	t.Run("other model is refused", func(t *testing.T) {
		_, err := ix.Search(ctx, "ws", "arcface-512d@1", [][]float32{q}, SearchParams{K: 5})
		require.ErrorIs(t, err, ErrModelMismatch)
	})
	for _, bad := range []struct {
		name string
		v    []float32
	}{
		{"empty", []float32{}},
		{"nan", append([]float32{float32(math.NaN())}, q[1:]...)},
		{"inf", append([]float32{float32(math.Inf(1))}, q[1:]...)},
		{"zero", make([]float32, 128)},
		{"wrong dimension", q[:64]},
	} {
		t.Run("query "+bad.name, func(t *testing.T) {
			_, err := ix.Search(ctx, "ws", testModel, [][]float32{q, bad.v}, SearchParams{K: 5})
			require.ErrorIs(t, err, ErrInvalidTemplate)
		})
		t.Run("template "+bad.name, func(t *testing.T) {
			_, err := ix.Prepare("ws", []Template{{ID: "x", PersonID: "p", ModelID: testModel, Vector: bad.v}})
			require.ErrorIs(t, err, ErrInvalidTemplate)
		})
	}
	t.Run("negative k", func(t *testing.T) {
		_, err := ix.Search(ctx, "ws", testModel, [][]float32{q}, SearchParams{K: -1})
		require.ErrorIs(t, err, ErrInvalidArgument)
	})
}

func TestRemoveAndUpdate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	ts, groups := randomGallery(rng, 200, 128)
	ix := newLoadedIndex(t, IndexConfig{}, "ws", ts, groups)
	ctx := context.Background()
	search := func(q []float32, gs ...string) []Match {
		got, err := ix.Search(ctx, "ws", testModel, [][]float32{q}, SearchParams{K: 1000, Threshold: -1, Groups: gs})
		require.NoError(t, err)
		return got[0]
	}
	target := ts[10]
	got := search(target.Vector)
	require.Equal(t, target.PersonID, got[0].PersonID)
	require.InDelta(t, 1.0, got[0].Score, 1e-4)

	// Removing the exact template: the person may remain through another template,
	// but never with this template id.
	require.Equal(t, 1, ix.RemoveTemplates("ws", []string{target.ID}))
	require.Equal(t, 0, ix.RemoveTemplates("ws", []string{target.ID}))
	for _, m := range search(target.Vector) {
		require.NotEqual(t, target.ID, m.TemplateID)
	}
	remaining := ts[:0:0]
	for _, tt := range ts {
		if tt.ID != target.ID {
			remaining = append(remaining, tt)
		}
	}
	requireSameMatches(t, bruteForce(remaining, groups, target.Vector, 1000, -1, nil), search(target.Vector), "after template removal")

	// Removing a person removes all their templates.
	victim := ts[40].PersonID
	ix.RemovePersons("ws", []string{victim})
	for _, m := range search(ts[40].Vector) {
		require.NotEqual(t, victim, m.PersonID)
	}
	kept := remaining[:0:0]
	for _, tt := range remaining {
		if tt.PersonID != victim {
			kept = append(kept, tt)
		}
	}
	requireSameMatches(t, bruteForce(kept, groups, ts[40].Vector, 1000, -1, nil), search(ts[40].Vector), "after person removal")

	// Moving a person to another group changes what the filter returns.
	mover := ts[100].PersonID
	ix.SetPersonGroups("ws", mover, []string{"vip"})
	vip := search(ts[100].Vector, "vip")
	require.Len(t, vip, 1)
	require.Equal(t, mover, vip[0].PersonID)
	for _, m := range search(ts[100].Vector, groups[mover]...) {
		require.NotEqual(t, mover, m.PersonID)
	}

	// Re-adding a template id replaces its vector.
	newVec := randomUnit(rng, 128)
	prepared, err := ix.Prepare("ws", []Template{{ID: ts[100].ID, PersonID: mover, ModelID: testModel, Vector: newVec}})
	require.NoError(t, err)
	require.NoError(t, ix.Add("ws", prepared))
	top := search(newVec)
	require.Equal(t, ts[100].ID, top[0].TemplateID)
	require.InDelta(t, 1.0, top[0].Score, 1e-4)
	require.Equal(t, len(kept), ix.Stats("ws")[0].Templates)
}

// TestIVF checks the approximate path: scanning every list equals the exact scan,
// and the default probe count keeps recall@10 high on identity-like clustered data.
func TestIVF(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	const dim, ids, per = 128, 4000, 5
	var ts []Template
	centres := make([][]float32, ids)
	for i := range centres {
		centres[i] = randomUnit(rng, dim)
		for j := 0; j < per; j++ {
			n := randomUnit(rng, dim)
			for k := range n {
				n[k] = centres[i][k] + 0.7*n[k]
			}
			ts = append(ts, Template{ID: fmt.Sprintf("t%d-%d", i, j), PersonID: fmt.Sprint("p", i), ModelID: testModel, Vector: normalizedCopy(n)})
		}
	}
	ix := newLoadedIndex(t, IndexConfig{ANNMinTemplates: 10_000}, "ws", ts, nil)
	st := ix.Stats("ws")[0]
	require.Equal(t, nlistFor(len(ts)), st.IVFLists)

	queries := make([][]float32, 50)
	for i := range queries {
		n := randomUnit(rng, dim)
		c := centres[rng.IntN(ids)]
		for k := range n {
			n[k] = c[k] + 0.7*n[k]
		}
		queries[i] = n
	}
	ctx := context.Background()
	exact, err := ix.Search(ctx, "ws", testModel, queries, SearchParams{K: 10, Threshold: -1, Mode: ModeExact})
	require.NoError(t, err)
	all, err := ix.Search(ctx, "ws", testModel, queries, SearchParams{K: 10, Threshold: -1, Mode: ModeApproximate, NProbe: st.IVFLists})
	require.NoError(t, err)
	require.Equal(t, exact, all)
	for qi, q := range queries {
		requireSameMatches(t, bruteForce(ts, nil, normalizedCopy(q), 10, -1, nil), exact[qi], fmt.Sprint("query ", qi))
	}
	approx, err := ix.Search(ctx, "ws", testModel, queries, SearchParams{K: 10, Threshold: -1})
	require.NoError(t, err)
	// The true identity (rank 1) must always be found.
	hits := 0
	for qi := range queries {
		require.Equal(t, exact[qi][0].PersonID, approx[qi][0].PersonID)
		for _, m := range approx[qi] {
			if slices.ContainsFunc(exact[qi], func(e Match) bool { return e.PersonID == m.PersonID }) {
				hits++
			}
		}
	}
	recall := float64(hits) / float64(10*len(queries))
	t.Logf("IVF recall@10 with the default nprobe (an eighth of %d lists): %.3f", st.IVFLists, recall)
	require.Greater(t, recall, 0.5)

	// Rows added after the build go into their nearest list and are found.
	v := randomUnit(rng, dim)
	prepared, err := ix.Prepare("ws", []Template{{ID: "late", PersonID: "late", ModelID: testModel, Vector: v}})
	require.NoError(t, err)
	require.NoError(t, ix.Add("ws", prepared))
	got, err := ix.Search(ctx, "ws", testModel, [][]float32{v}, SearchParams{K: 1, Threshold: -1})
	require.NoError(t, err)
	require.Equal(t, "late", got[0][0].PersonID)
}
