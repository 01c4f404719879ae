package matcher

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Matcher is this replica's shard of the 1:N index: the in-memory Index kept in
// step with PostgreSQL. Every change is written to PostgreSQL first and applied to
// the index before the method returns, so the next search sees it (read your
// writes) and a restart rebuilds the same index. Changes of one workspace are
// serialised so the database and the index apply them in the same order.
type Matcher struct {
	store *Store
	index *Index
	shard Shard
	log   *slog.Logger

	writeMu sync.Map // workspace -> *sync.Mutex
}

// NewMatcher returns a Matcher for shard over store and index.
func NewMatcher(store *Store, index *Index, shard Shard, log *slog.Logger) *Matcher {
	return &Matcher{store: store, index: index, shard: shard, log: log}
}

// Index returns the in-memory index (for stats and the bench).
func (m *Matcher) Index() *Index { return m.index }

func (m *Matcher) lockWorkspace(ws string) func() {
	mu, _ := m.writeMu.LoadOrStore(ws, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// Load rebuilds the index from PostgreSQL (the shard's rows) and builds the IVF
// indexes of large galleries. It runs before the service reports SERVING.
func (m *Matcher) Load(ctx context.Context) error {
	start := time.Now()
	n, err := m.store.Load(ctx, m.shard, loader{m.index})
	if err != nil {
		return err
	}
	loaded := time.Since(start)
	loader{m.index}.finish() // IVF indexes of the large galleries
	m.log.InfoContext(ctx, "matcher index loaded", "templates", n, "shard", m.shard.Index, "shards", m.shard.Count,
		"load_ms", loaded.Milliseconds(), "total_ms", time.Since(start).Milliseconds(), "kernel", kernelName)
	return nil
}

func validWorkspace(ws string) error {
	if ws == "" {
		return fmt.Errorf("%w: workspace_id is required", ErrInvalidArgument)
	}
	return nil
}

// AddTemplates validates, stores and indexes templates (upsert by template id).
func (m *Matcher) AddTemplates(ctx context.Context, ws string, ts []Template) (int, error) {
	if err := validWorkspace(ws); err != nil {
		return 0, err
	}
	unlock := m.lockWorkspace(ws)
	defer unlock()
	prepared, err := m.index.Prepare(ws, ts)
	if err != nil {
		return 0, err
	}
	if err := m.store.AddTemplates(ctx, ws, prepared); err != nil {
		return 0, err
	}
	if err := m.index.Add(ws, prepared); err != nil {
		return 0, err
	}
	return len(prepared), nil
}

// RemoveTemplates removes templates by id and all templates of persons.
func (m *Matcher) RemoveTemplates(ctx context.Context, ws string, templateIDs, personIDs []string) (int, error) {
	if err := validWorkspace(ws); err != nil {
		return 0, err
	}
	unlock := m.lockWorkspace(ws)
	defer unlock()
	n, err := m.store.RemoveTemplates(ctx, ws, templateIDs, personIDs)
	if err != nil {
		return 0, err
	}
	m.index.RemoveTemplates(ws, templateIDs)
	m.index.RemovePersons(ws, personIDs)
	return n, nil
}

// SetPersonGroups replaces a person's groups.
func (m *Matcher) SetPersonGroups(ctx context.Context, ws, personID string, groups []string) error {
	if err := validWorkspace(ws); err != nil {
		return err
	}
	if personID == "" {
		return fmt.Errorf("%w: person_id is required", ErrInvalidArgument)
	}
	unlock := m.lockWorkspace(ws)
	defer unlock()
	if err := m.store.SetPersonGroups(ctx, ws, personID, groups); err != nil {
		return err
	}
	m.index.SetPersonGroups(ws, personID, groups)
	return nil
}

// Search searches this shard.
func (m *Matcher) Search(ctx context.Context, ws, modelID string, queries [][]float32, p SearchParams) ([][]Match, error) {
	if err := validWorkspace(ws); err != nil {
		return nil, err
	}
	return m.index.Search(ctx, ws, modelID, queries, p)
}
