package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type faissOut struct {
	Version  string             `json:"faiss_version"`
	Numpy    string             `json:"numpy_version"`
	Threads  int                `json:"threads"`
	Results  []latencyStats     `json:"results"`
	Memory   map[string]int64   `json:"memory"`
	Build    map[string]float64 `json:"build_seconds"`
	RawBytes int64              `json:"raw_bytes"`
	Pool     any                `json:"threadpool_info"`
}

// report prints the comparison tables (markdown) from ours.json and faiss.json.
func report(dir string) error {
	var o ours
	var f faissOut
	for name, v := range map[string]any{"ours.json": &o, "faiss.json": &f} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	find := func(rs []latencyStats, name, param string, batch int) *latencyStats {
		for i := range rs {
			if rs[i].Name == name && rs[i].Param == param && rs[i].Batch == batch {
				return &rs[i]
			}
		}
		return nil
	}
	fmt.Printf("Data: %d templates of dim 128, 1000 queries, top-%d; threads: Go GOMAXPROCS=%d, FAISS OpenMP %d; kernel %s; FAISS %s, numpy %s.\n\n",
		o.Templates, topK, o.GOMAXPROCS, f.Threads, o.Kernel, f.Version, f.Numpy)

	fmt.Println("| search | batch | p50 ms | p99 ms | QPS | recall@10 | recall@1 |")
	fmt.Println("|---|---|---|---|---|---|---|")
	all := append(append([]latencyStats{}, f.Results...), o.Results...)
	for _, r := range all {
		name := r.Name
		if r.Param != "" {
			name += " " + r.Param
		}
		r1 := "—"
		if r.Recall1 > 0 {
			r1 = fmt.Sprintf("%.3f", r.Recall1)
		}
		fmt.Printf("| %s | %d | %.3f | %.3f | %.1f | %.4f | %s |\n", name, r.Batch, r.P50ms, r.P99ms, r.QPS, r.Recall10, r1)
	}

	fmt.Println("\nExact search, ours (int8 scan + re-rank) against FAISS IndexFlatIP (float32):")
	fmt.Println()
	fmt.Println("| batch | our QPS / FAISS QPS | our p50 / FAISS p50 | our recall@10 |")
	fmt.Println("|---|---|---|---|")
	for _, b := range []int{1, batch} {
		us, them := find(o.Results, "vigil exact int8", "", b), find(f.Results, "faiss IndexFlatIP", "", b)
		if us != nil && them != nil {
			fmt.Printf("| %d | %.2fx | %.2fx | %.4f |\n", b, us.QPS/them.QPS, us.P50ms/them.P50ms, us.Recall10)
		}
	}

	fmt.Println("\nANN at matched recall: for each FAISS setting, our fastest IVF setting with recall@10 at least as high (single queries and batches of 32):")
	fmt.Println()
	fmt.Println("| FAISS setting | batch | FAISS recall | FAISS QPS | our setting | our recall | our QPS | ratio |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, them := range f.Results {
		if !strings.Contains(them.Name, "HNSW") && !strings.Contains(them.Name, "IVFFlat") {
			continue
		}
		var best *latencyStats
		for i := range o.Results {
			us := &o.Results[i]
			if us.Name != "vigil IVF int8" || us.Batch != them.Batch || us.Recall10 < them.Recall10 {
				continue
			}
			if best == nil || us.QPS > best.QPS {
				best = us
			}
		}
		if best == nil {
			// Exact search always qualifies (recall ~1).
			best = find(o.Results, "vigil exact int8", "", them.Batch)
		}
		fmt.Printf("| %s %s | %d | %.4f | %.1f | %s %s | %.4f | %.1f | %.2fx |\n", them.Name, them.Param, them.Batch, them.Recall10, them.QPS,
			best.Name, best.Param, best.Recall10, best.QPS, best.QPS/them.QPS)
	}

	fmt.Println("\nMemory (raw float32 templates: ", o.RawBytes>>20, "MiB):")
	fmt.Println()
	fmt.Println("| index | bytes | x raw |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| vigil (int8 codes + int8 residuals + ids, as counted by the index) | %d MiB | %.2f |\n", o.IndexBytes>>20, float64(o.IndexBytes)/float64(o.RawBytes))
	fmt.Printf("| vigil (Go heap growth while building, everything included) | %d MiB | %.2f |\n", o.HeapBytes>>20, float64(o.HeapBytes)/float64(o.RawBytes))
	for _, k := range []string{"IndexFlatIP", "IndexIVFFlat", "IndexHNSWFlat"} {
		fmt.Printf("| FAISS %s (RSS growth) | %d MiB | %.2f |\n", k, f.Memory[k]>>20, float64(f.Memory[k])/float64(f.RawBytes))
	}
	fmt.Printf("\nBuild: ours %.1fs to index, IVF (%d lists) %.1fs; FAISS IVFFlat %.1fs, HNSWFlat %.1fs.\n",
		o.BuildSeconds, o.IVFLists, o.IVFSeconds, f.Build["IndexIVFFlat"], f.Build["IndexHNSWFlat"])
	for i, l := range o.PGLoads {
		fmt.Printf("Cold load %d of %d templates from PostgreSQL (binary COPY, then IVF build): %.1fs wall, %.1fs CPU (goal: under 20 s).\n", i+1, o.Templates, l.Wall, l.CPU)
	}
	fmt.Printf("FAISS BLAS: %v\n", f.Pool)
	return nil
}
