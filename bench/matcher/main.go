// Command matcherbench measures the matcher's index against FAISS on the same data:
// `gen` writes the synthetic templates and queries, faiss_bench.py measures FAISS and
// writes the float exact ground truth, `run` measures ours and prints the comparison,
// `pgload` measures loading the templates from PostgreSQL. run.sh does all four.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vigilhq/vigil/services/matcher"
)

const (
	model = "mobilefacenet-128d@1"
	ws    = "bench"
	topK  = 10
	batch = 32
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: matcherbench gen|run|pgload|report -dir DIR")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "/tmp/vigil-bench-matcher", "where the data and results go")
	dbURL := fs.String("db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server for pgload (it keeps a database vigil_matcher_bench there)")
	ids := fs.Int("identities", defaultSpec().Identities, "identities (5 templates each)")
	fresh := fs.Bool("fresh", false, "pgload: recreate the bench database")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the command here")
	_ = fs.Parse(os.Args[2:])
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	var err error
	switch os.Args[1] {
	case "gen":
		s := defaultSpec()
		s.Identities = *ids
		err = gen(*dir, s)
	case "run":
		err = run(*dir)
	case "pgload":
		err = pgload(*dir, *dbURL, *fresh)
	case "report":
		err = report(*dir)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "matcherbench:", err)
		os.Exit(1)
	}
}

func gen(dir string, s dataSpec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	base, queries := generate(s)
	if err := writeF32(filepath.Join(dir, "base.f32"), base, s.Dim); err != nil {
		return err
	}
	if err := writeF32(filepath.Join(dir, "queries.f32"), queries, s.Dim); err != nil {
		return err
	}
	fmt.Printf("generated %d templates (%d identities x %d) and %d queries of dim %d in %v\n",
		len(base)/s.Dim, s.Identities, s.PerIdentity, s.Queries, s.Dim, time.Since(start).Round(time.Millisecond))
	return nil
}

func readF32(path string) ([]float32, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, 0, err
	}
	rows, dim := int(leU32(b)), int(leU32(b[4:]))
	v := make([]float32, rows*dim)
	for i := range v {
		v[i] = f32frombits(leU32(b[8+4*i:]))
	}
	return v, dim, nil
}

// latencyStats summarises one way of searching.
type latencyStats struct {
	Name     string  `json:"name"`
	Param    string  `json:"param,omitempty"`
	Batch    int     `json:"batch"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	QPS      float64 `json:"qps"`
	Recall10 float64 `json:"recall_at_10"`
	Recall1  float64 `json:"recall_at_1"`
}

func summarise(name, param string, batchSize int, lat []time.Duration, total time.Duration, queries int, recall, recall1 float64) latencyStats {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	return latencyStats{Name: name, Param: param, Batch: batchSize, P50ms: pct(0.50), P99ms: pct(0.99),
		QPS: float64(queries) / total.Seconds(), Recall10: recall, Recall1: recall1}
}

// ours is what `run` records in ours.json.
type ours struct {
	Kernel       string         `json:"kernel"`
	GOMAXPROCS   int            `json:"gomaxprocs"`
	Templates    int            `json:"templates"`
	RawBytes     int64          `json:"raw_bytes"`
	IndexBytes   int64          `json:"index_bytes"`
	HeapBytes    int64          `json:"heap_bytes"`
	BuildSeconds float64        `json:"build_seconds"`
	IVFSeconds   float64        `json:"ivf_build_seconds"`
	IVFLists     int            `json:"ivf_lists"`
	Results      []latencyStats `json:"results"`
	PGLoads      []pgLoad       `json:"pg_loads,omitempty"`
}

func heapInUse() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func run(dir string) error {
	base, dim, err := readF32(filepath.Join(dir, "base.f32"))
	if err != nil {
		return err
	}
	qv, _, err := readF32(filepath.Join(dir, "queries.f32"))
	if err != nil {
		return err
	}
	gt, err := readI32(filepath.Join(dir, "gt.i32"))
	if err != nil {
		return fmt.Errorf("ground truth (run faiss_bench.py first): %w", err)
	}
	n := len(base) / dim
	queries := make([][]float32, len(qv)/dim)
	for i := range queries {
		queries[i] = qv[i*dim : (i+1)*dim]
	}
	res := ours{Kernel: matcher.KernelName(), GOMAXPROCS: runtime.GOMAXPROCS(0), Templates: n, RawBytes: int64(len(base)) * 4}

	// Each template is its own "person" here, so our top-10 persons are top-10
	// templates, the unit FAISS returns.
	heap0 := heapInUse()
	start := time.Now()
	ix := matcher.NewIndex(matcher.IndexConfig{ANNMinTemplates: 1 << 30})
	for lo := 0; lo < n; lo += 10_000 {
		hi := min(lo+10_000, n)
		ts := make([]matcher.Template, 0, hi-lo)
		for r := lo; r < hi; r++ {
			ts = append(ts, matcher.Template{ID: strconv.Itoa(r), PersonID: strconv.Itoa(r), ModelID: model, Vector: base[r*dim : (r+1)*dim]})
		}
		p, err := ix.Prepare(ws, ts)
		if err != nil {
			return err
		}
		if err := ix.Add(ws, p); err != nil {
			return err
		}
	}
	res.BuildSeconds = time.Since(start).Seconds()
	res.HeapBytes = heapInUse() - heap0
	runtime.KeepAlive(base) // live in both readings, so the difference is the index
	base = nil
	res.IndexBytes = ix.Stats(ws)[0].MemoryBytes
	fmt.Printf("kernel %s, GOMAXPROCS %d, %d templates added in %.1fs; index %d MiB (%.2fx raw), heap growth %d MiB\n",
		res.Kernel, res.GOMAXPROCS, n, res.BuildSeconds, res.IndexBytes>>20, float64(res.IndexBytes)/float64(res.RawBytes), res.HeapBytes>>20)

	ctx := context.Background()
	measure := func(name, param string, p matcher.SearchParams, batchSize int) (latencyStats, error) {
		var lat []time.Duration
		hits, firsts := 0, 0
		t0 := time.Now()
		for lo := 0; lo < len(queries); lo += batchSize {
			hi := min(lo+batchSize, len(queries))
			s := time.Now()
			out, err := ix.Search(ctx, ws, model, queries[lo:hi], p)
			if err != nil {
				return latencyStats{}, err
			}
			lat = append(lat, time.Since(s))
			for i, ms := range out {
				hits += recallHits(ms, gt[lo+i])
				if len(ms) > 0 && ms[0].TemplateID == strconv.Itoa(int(gt[lo+i][0])) {
					firsts++
				}
			}
		}
		total := time.Since(t0)
		st := summarise(name, param, batchSize, lat, total, len(queries), float64(hits)/float64(topK*len(queries)), float64(firsts)/float64(len(queries)))
		fmt.Printf("%-22s %-12s batch %-3d p50 %8.3f ms  p99 %8.3f ms  QPS %8.1f  recall@10 %.4f  recall@1 %.3f\n", st.Name, st.Param, st.Batch, st.P50ms, st.P99ms, st.QPS, st.Recall10, st.Recall1)
		return st, nil
	}
	exact := matcher.SearchParams{K: topK, Threshold: -2, Mode: matcher.ModeExact}
	// Warm up (page in, JIT nothing; the index is already resident).
	if _, err := measure("warmup", "", exact, batch); err != nil {
		return err
	}
	for _, b := range []int{1, batch} {
		st, err := measure("vigil exact int8", "", exact, b)
		if err != nil {
			return err
		}
		res.Results = append(res.Results, st)
	}

	start = time.Now()
	ix.BuildANN(ws, 0, 0)
	res.IVFSeconds = time.Since(start).Seconds()
	res.IVFLists = ix.Stats(ws)[0].IVFLists
	fmt.Printf("IVF: %d lists built in %.1fs\n", res.IVFLists, res.IVFSeconds)
	for _, np := range []int{8, 16, 32, 48, 64, 128, 256, 384} {
		p := matcher.SearchParams{K: topK, Threshold: -2, Mode: matcher.ModeApproximate, NProbe: np}
		for _, b := range []int{1, batch} {
			st, err := measure("vigil IVF int8", fmt.Sprint("nprobe=", np), p, b)
			if err != nil {
				return err
			}
			res.Results = append(res.Results, st)
		}
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(filepath.Join(dir, "ours.json"), b, 0o644)
}

func recallHits(ms []matcher.Match, truth []int32) int {
	hits := 0
	for _, m := range ms {
		id, _ := strconv.Atoi(m.TemplateID)
		if slices.Contains(truth, int32(id)) {
			hits++
		}
	}
	return hits
}

// pgload stores the templates in a database of their own through the matcher's
// store (once; later runs reuse it) and times cold loads, what a replica does at
// start: binary COPY into the index, then the IVF build. It reports wall and CPU time,
// since the machine is shared.
func pgload(dir, url string, fresh bool) error {
	ctx := context.Background()
	pool, err := benchDB(ctx, url, fresh)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := matcher.Migrate(ctx, pool); err != nil {
		return err
	}
	store := matcher.NewStore(pool)
	var have int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM matcher_templates").Scan(&have); err != nil {
		return err
	}
	base, dim, err := readF32(filepath.Join(dir, "base.f32"))
	if err != nil {
		return err
	}
	n := len(base) / dim
	if have != n {
		if _, err := pool.Exec(ctx, "TRUNCATE matcher_templates"); err != nil {
			return err
		}
		start := time.Now()
		for lo := 0; lo < n; lo += 5_000 {
			hi := min(lo+5_000, n)
			ts := make([]matcher.Template, 0, hi-lo)
			for r := lo; r < hi; r++ {
				ts = append(ts, matcher.Template{ID: fmt.Sprintf("t%07d", r), PersonID: fmt.Sprintf("p%07d", r/5), ModelID: model, Vector: base[r*dim : (r+1)*dim]})
			}
			if err := store.AddTemplates(ctx, ws, ts); err != nil {
				return err
			}
		}
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE matcher_templates"); err != nil {
			return err
		}
		fmt.Printf("stored %d templates in PostgreSQL in %.1fs (setup, not the measured load)\n", n, time.Since(start).Seconds())
	}
	base = nil
	runtime.GC()

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var res ours
	if b, err := os.ReadFile(filepath.Join(dir, "ours.json")); err == nil {
		_ = json.Unmarshal(b, &res)
	}
	res.PGLoads = nil
	for i := 0; i < 3; i++ {
		ix := matcher.NewIndex(matcher.DefaultIndexConfig())
		m := matcher.NewMatcher(store, ix, matcher.Shard{Index: 0, Count: 1}, log)
		cpu0 := cpuSeconds()
		start := time.Now()
		if err := m.Load(ctx); err != nil {
			return err
		}
		wall := time.Since(start).Seconds()
		cpu := cpuSeconds() - cpu0
		st := ix.Stats(ws)[0]
		fmt.Printf("cold load %d: %d templates from PostgreSQL (binary COPY) incl. IVF build (%d lists): %.1fs wall, %.1fs CPU of this process\n",
			i+1, st.Templates, st.IVFLists, wall, cpu)
		res.PGLoads = append(res.PGLoads, pgLoad{Wall: wall, CPU: cpu})
		ix = nil
		runtime.GC()
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(filepath.Join(dir, "ours.json"), b, 0o644)
}

type pgLoad struct {
	Wall float64 `json:"wall_seconds"`
	CPU  float64 `json:"cpu_seconds"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// benchDB opens (creating it if needed, or anew with fresh) the bench's database.
func benchDB(ctx context.Context, url string, fresh bool) (*pgxpool.Pool, error) {
	const name = "vigil_matcher_bench"
	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if fresh {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return nil, err
		}
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return nil, err
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Database = name
	return pgxpool.NewWithConfig(ctx, cfg)
}
