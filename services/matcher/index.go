package matcher

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
)

// IndexConfig tunes the in-memory index.
type IndexConfig struct {
	// ANNMinTemplates is the gallery size from which an IVF index is built and used
	// by ModeAuto searches. Below it the exact scan is fast enough (about 2 ms per
	// 250k templates on 2 cores) that an approximation buys nothing.
	ANNMinTemplates int
	// NProbe is the default number of IVF lists a query scans; 0: an eighth of
	// the lists (at 1M templates about 8x less work than the exact scan, with
	// recall@10 ~0.77 and the exact top-1 found for ~0.98 of queries on
	// bench/matcher's data).
	NProbe int
	// Workers bounds the goroutines of one search; 0 means GOMAXPROCS.
	Workers int
}

// DefaultIndexConfig is what the service runs with unless configured otherwise.
func DefaultIndexConfig() IndexConfig {
	return IndexConfig{ANNMinTemplates: 250_000}
}

// Index is the in-memory 1:N index of every workspace this replica owns. Each
// workspace has one gallery per extractor model. Methods are safe for concurrent use;
// a change is visible to every search that starts after the method returns.
type Index struct {
	cfg        IndexConfig
	mu         sync.RWMutex
	workspaces map[string]*workspaceIndex
}

type workspaceIndex struct {
	mu        sync.RWMutex
	galleries map[string]*gallery // by model id
	groups    map[string][]string // person id -> groups, also for persons without templates yet
}

// NewIndex returns an empty index.
func NewIndex(cfg IndexConfig) *Index {
	if cfg.ANNMinTemplates <= 0 {
		cfg.ANNMinTemplates = DefaultIndexConfig().ANNMinTemplates
	}
	return &Index{cfg: cfg, workspaces: map[string]*workspaceIndex{}}
}

func (ix *Index) workspace(id string, create bool) *workspaceIndex {
	ix.mu.RLock()
	w := ix.workspaces[id]
	ix.mu.RUnlock()
	if w != nil || !create {
		return w
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if w = ix.workspaces[id]; w == nil {
		w = &workspaceIndex{galleries: map[string]*gallery{}, groups: map[string][]string{}}
		ix.workspaces[id] = w
	}
	return w
}

// Prepare validates templates for a workspace and returns them normalised, without
// changing the index: callers persist the result and then Add it. It fails with
// ErrInvalidTemplate on a bad vector or a dimension that differs from the gallery's.
func (ix *Index) Prepare(workspace string, ts []Template) ([]Template, error) {
	dims := map[string]int{}
	if w := ix.workspace(workspace, false); w != nil {
		w.mu.RLock()
		for m, g := range w.galleries {
			if g.size > 0 {
				dims[m] = g.dim
			}
		}
		w.mu.RUnlock()
	}
	out := make([]Template, len(ts))
	for i, t := range ts {
		if t.ID == "" || t.PersonID == "" || t.ModelID == "" {
			return nil, fmt.Errorf("%w: templates[%d]: id, person_id and model_id are required", ErrInvalidArgument, i)
		}
		v, err := normalized(t.Vector, dims[t.ModelID])
		if err != nil {
			return nil, fmt.Errorf("templates[%d]: %w", i, err)
		}
		if dims[t.ModelID] == 0 {
			dims[t.ModelID] = len(v)
		}
		t.Vector = v
		out[i] = t
	}
	return out, nil
}

// Add inserts (or replaces, by template id) prepared templates.
func (ix *Index) Add(workspace string, ts []Template) error {
	return ix.add(workspace, ts, true)
}

func (ix *Index) add(workspace string, ts []Template, buildANN bool) error {
	w := ix.workspace(workspace, true)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range ts {
		g := w.galleries[t.ModelID]
		if g == nil || g.size == 0 {
			g = newGallery(t.ModelID, len(t.Vector))
			w.galleries[t.ModelID] = g
		}
		if len(t.Vector) != g.dim {
			return fmt.Errorf("%w: template %s has dimension %d, gallery has %d", ErrInvalidTemplate, t.ID, len(t.Vector), g.dim)
		}
		// A template id is unique in the workspace: adding it under another model moves it.
		for m, og := range w.galleries {
			if m != t.ModelID {
				og.remove(t.ID)
			}
		}
		g.add(t.ID, t.PersonID, t.Vector, w.groups[t.PersonID])
	}
	if buildANN {
		for _, g := range w.galleries {
			ix.maybeBuildANN(g)
		}
	}
	return nil
}

// maybeBuildANN builds the IVF index when a gallery crosses the size threshold,
// and rebuilds it when the gallery has doubled since (lists drift as rows are added).
func (ix *Index) maybeBuildANN(g *gallery) {
	switch {
	case g.centroids == nil && g.size >= ix.cfg.ANNMinTemplates,
		g.centroids != nil && g.size >= 2*g.builtAt:
		g.buildIVF(nlistFor(g.size), uint64(g.size))
	}
}

// RemoveTemplates deletes templates by id and returns how many were present.
func (ix *Index) RemoveTemplates(workspace string, ids []string) int {
	w := ix.workspace(workspace, false)
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, id := range ids {
		for _, g := range w.galleries {
			if g.remove(id) {
				n++
			}
		}
	}
	return n
}

// RemovePersons deletes every template of the persons (and their group
// memberships) and returns how many templates went.
func (ix *Index) RemovePersons(workspace string, personIDs []string) int {
	w := ix.workspace(workspace, false)
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range personIDs {
		delete(w.groups, p)
	}
	n := 0
	for _, g := range w.galleries {
		n += g.removePersons(personIDs)
	}
	return n
}

// SetPersonGroups replaces the groups a person belongs to.
func (ix *Index) SetPersonGroups(workspace, personID string, groups []string) {
	w := ix.workspace(workspace, true)
	w.mu.Lock()
	defer w.mu.Unlock()
	groups = slices.Clone(groups)
	if len(groups) == 0 {
		delete(w.groups, personID)
	} else {
		w.groups[personID] = groups
	}
	for _, g := range w.galleries {
		g.setGroups(personID, groups)
	}
}

// Search runs a batch of queries made by modelID against the workspace's gallery
// of that model. A query from another model than the gallery holds fails with
// ErrModelMismatch; a bad vector with ErrInvalidTemplate. An unknown workspace or
// an empty gallery gives empty results.
func (ix *Index) Search(ctx context.Context, workspace, modelID string, queries [][]float32, p SearchParams) ([][]Match, error) {
	if p.K < 0 {
		return nil, fmt.Errorf("%w: k must not be negative", ErrInvalidArgument)
	}
	if modelID == "" {
		return nil, fmt.Errorf("%w: model_id is required", ErrInvalidArgument)
	}
	w := ix.workspace(workspace, false)
	var g *gallery
	if w != nil {
		w.mu.RLock()
		defer w.mu.RUnlock()
		g = w.galleries[modelID]
		if g == nil || g.size == 0 {
			for m, og := range w.galleries {
				if og.size > 0 {
					return nil, fmt.Errorf("%w: query made by %q, gallery holds %q templates", ErrModelMismatch, modelID, m)
				}
			}
		}
	}
	dim := 0
	if g != nil && g.size > 0 {
		dim = g.dim
	}
	qs := make([][]float32, len(queries))
	for i, q := range queries {
		v, err := normalized(q, dim)
		if err != nil {
			return nil, fmt.Errorf("queries[%d]: %w", i, err)
		}
		qs[i] = v
	}
	if g == nil {
		out := make([][]Match, len(qs))
		for i := range out {
			out[i] = []Match{}
		}
		return out, nil
	}
	return g.search(ctx, qs, p, ix.cfg.NProbe, ix.cfg.Workers)
}

// GalleryStats describes one gallery.
type GalleryStats struct {
	Workspace   string
	ModelID     string
	Dim         int
	Templates   int
	Persons     int
	IVFLists    int // 0 while exact-only
	MemoryBytes int64
}

// Stats lists the galleries of a workspace, or of every workspace when it is "".
func (ix *Index) Stats(workspace string) []GalleryStats {
	ix.mu.RLock()
	ids := slices.Collect(maps.Keys(ix.workspaces))
	ix.mu.RUnlock()
	sort.Strings(ids)
	var out []GalleryStats
	for _, id := range ids {
		if workspace != "" && id != workspace {
			continue
		}
		w := ix.workspace(id, false)
		w.mu.RLock()
		for m, g := range w.galleries {
			if g.size == 0 {
				continue
			}
			lists := 0
			if g.centroids != nil {
				lists = len(g.parts)
			}
			out = append(out, GalleryStats{Workspace: id, ModelID: m, Dim: g.dim, Templates: g.size,
				Persons: len(g.personOrd), IVFLists: lists, MemoryBytes: g.memoryBytes()})
		}
		w.mu.RUnlock()
	}
	return out
}

// loader adds rows read at start without building IVF indexes after every batch;
// finish builds them once.
type loader struct{ ix *Index }

func (l loader) setGroups(workspace, personID string, groups []string) {
	l.ix.SetPersonGroups(workspace, personID, groups)
}

func (l loader) add(workspace string, ts []Template) error { return l.ix.add(workspace, ts, false) }

func (l loader) finish() {
	l.ix.mu.RLock()
	ws := slices.Collect(maps.Values(l.ix.workspaces))
	l.ix.mu.RUnlock()
	for _, w := range ws {
		w.mu.Lock()
		for _, g := range w.galleries {
			l.ix.maybeBuildANN(g)
		}
		w.mu.Unlock()
	}
}

// BuildANN (re)builds the IVF index of every gallery of a workspace that holds at
// least minTemplates rows, with nlist lists (0: about sqrt(n)). The service builds
// them by itself as galleries grow; this is for operators and the benchmark.
func (ix *Index) BuildANN(workspace string, minTemplates, nlist int) {
	w := ix.workspace(workspace, false)
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.galleries {
		if g.size >= minTemplates {
			n := nlist
			if n <= 0 {
				n = nlistFor(g.size)
			}
			g.buildIVF(n, uint64(g.size))
		}
	}
}

// KernelName says which int8 kernel this process uses ("avx2" or "generic").
func KernelName() string { return kernelName }
