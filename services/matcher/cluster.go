package matcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// Cluster is the whole index as seen from one replica: its own shard (the local
// Matcher) and the other shards through their gRPC clients. Persons are owned by
// shard personHash(id) % len(shards). Writes go to the owning shards; a search fans
// out to every shard and merges their top-k (persons never span shards, so merging
// per-shard top-k lists is exact).
type Cluster struct {
	self    int
	shards  []shardPeer
	local   *Matcher
	timeout time.Duration
	metrics *metrics
}

type shardPeer struct {
	name   string
	client matcherv1.MatcherServiceClient // nil for this replica's own shard
}

// SearchOutcome is a merged search: Partial when some shards did not answer.
type SearchOutcome struct {
	Results [][]Match
	Partial bool
	Missing []string
}

// NewCluster builds the cluster view. names lists every shard in shard-map order,
// self is this replica's position, clients gives the other shards' clients by name.
func NewCluster(names []string, self int, clients map[string]matcherv1.MatcherServiceClient, local *Matcher, timeout time.Duration, m *metrics) (*Cluster, error) {
	if len(names) == 0 {
		names = []string{"local"}
	}
	if self < 0 || self >= len(names) {
		return nil, fmt.Errorf("%w: shard index %d outside the %d shards", ErrInvalidArgument, self, len(names))
	}
	c := &Cluster{self: self, local: local, timeout: timeout, metrics: m}
	for i, n := range names {
		p := shardPeer{name: n}
		if i != self {
			p.client = clients[n]
			if p.client == nil {
				return nil, fmt.Errorf("no client for shard %s", n)
			}
		}
		c.shards = append(c.shards, p)
	}
	return c, nil
}

func (c *Cluster) owner(personID string) int {
	return int(personHash(personID) % uint32(len(c.shards)))
}

// each runs f for every shard index in parts, concurrently, and joins the errors.
func each(parts []int, f func(i int) error) error {
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for j, i := range parts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[j] = f(i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) shardErr(name string, err error) error {
	c.metrics.shardFailed(name)
	if s, ok := status.FromError(err); ok && (s.Code() == codes.Unavailable || s.Code() == codes.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", ErrShardUnavailable, name, s.Message())
	}
	return err
}

// AddTemplates stores templates on their owning shards. A template id re-added for a
// person owned by another shard than before must be removed first: the old shard
// would otherwise keep it in memory until its next restart.
func (c *Cluster) AddTemplates(ctx context.Context, ws string, ts []Template, requestID string) (int, error) {
	// Reject bad vectors before anything is written anywhere.
	if _, err := NewIndex(IndexConfig{}).Prepare(ws, ts); err != nil {
		return 0, err
	}
	byShard := map[int][]Template{}
	for _, t := range ts {
		o := c.owner(t.PersonID)
		byShard[o] = append(byShard[o], t)
	}
	var mu sync.Mutex
	stored := 0
	err := each(slicesKeys(byShard), func(i int) error {
		var n int
		var err error
		if i == c.self {
			n, err = c.local.AddTemplates(ctx, ws, byShard[i])
		} else {
			var resp *matcherv1.AddTemplatesResponse
			resp, err = c.shards[i].client.AddTemplates(ctx, &matcherv1.AddTemplatesRequest{WorkspaceId: ws,
				Templates: templatesToProto(byShard[i]), RequestId: requestID, Scope: matcherv1.Scope_SCOPE_LOCAL_SHARD})
			if err != nil {
				return c.shardErr(c.shards[i].name, err)
			}
			n = int(resp.GetStored())
		}
		mu.Lock()
		stored += n
		mu.Unlock()
		return err
	})
	return stored, err
}

// RemoveTemplates removes templates by id (asking every shard, as a template id
// does not say its person) and persons' templates (on their owners).
func (c *Cluster) RemoveTemplates(ctx context.Context, ws string, templateIDs, personIDs []string, requestID string) (int, error) {
	persons := map[int][]string{}
	for _, p := range personIDs {
		persons[c.owner(p)] = append(persons[c.owner(p)], p)
	}
	all := make([]int, len(c.shards))
	for i := range all {
		all[i] = i
	}
	var mu sync.Mutex
	removed := 0
	err := each(all, func(i int) error {
		if len(templateIDs) == 0 && len(persons[i]) == 0 {
			return nil
		}
		var n int
		var err error
		if i == c.self {
			n, err = c.local.RemoveTemplates(ctx, ws, templateIDs, persons[i])
		} else {
			var resp *matcherv1.RemoveTemplatesResponse
			resp, err = c.shards[i].client.RemoveTemplates(ctx, &matcherv1.RemoveTemplatesRequest{WorkspaceId: ws,
				TemplateIds: templateIDs, PersonIds: persons[i], RequestId: requestID, Scope: matcherv1.Scope_SCOPE_LOCAL_SHARD})
			if err != nil {
				return c.shardErr(c.shards[i].name, err)
			}
			n = int(resp.GetRemoved())
		}
		mu.Lock()
		removed += n
		mu.Unlock()
		return err
	})
	return removed, err
}

// SetPersonGroups updates the person's groups on its owning shard.
func (c *Cluster) SetPersonGroups(ctx context.Context, ws, personID string, groups []string, requestID string) error {
	i := c.owner(personID)
	if i == c.self {
		return c.local.SetPersonGroups(ctx, ws, personID, groups)
	}
	_, err := c.shards[i].client.UpdatePersonGroups(ctx, &matcherv1.UpdatePersonGroupsRequest{WorkspaceId: ws,
		PersonId: personID, GroupIds: groups, RequestId: requestID, Scope: matcherv1.Scope_SCOPE_LOCAL_SHARD})
	if err != nil {
		return c.shardErr(c.shards[i].name, err)
	}
	return nil
}

// Search fans the queries out to every shard, each bounded by the shard timeout,
// and merges the answers. A shard that fails with Unavailable or runs past its
// deadline is left out and named in Missing; any other error fails the search.
func (c *Cluster) Search(ctx context.Context, ws, modelID string, queries [][]float32, p SearchParams) (SearchOutcome, error) {
	type answer struct {
		results [][]Match
		err     error
	}
	answers := make([]answer, len(c.shards))
	var wg sync.WaitGroup
	for i := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == c.self {
				r, err := c.local.Search(ctx, ws, modelID, queries, p)
				answers[i] = answer{r, err}
				return
			}
			sctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			req := &matcherv1.SearchRequest{WorkspaceId: ws, Queries: queriesToProto(modelID, queries), TopK: int32(p.K),
				GroupIds: p.Groups, Mode: searchModeToProto(p.Mode), Nprobe: int32(p.NProbe), Scope: matcherv1.Scope_SCOPE_LOCAL_SHARD}
			if p.Threshold > -1 {
				thr := p.Threshold
				req.MinScore = &thr
			}
			resp, err := c.shards[i].client.Search(sctx, req)
			if err != nil {
				answers[i] = answer{err: err}
				return
			}
			answers[i] = answer{results: resultsFromProto(resp.GetResults())}
		}()
	}
	wg.Wait()

	out := SearchOutcome{Results: make([][]Match, len(queries))}
	for i, a := range answers {
		name := c.shards[i].name
		if a.err != nil {
			if i == c.self {
				return SearchOutcome{}, a.err
			}
			err := c.shardErr(name, a.err)
			if errors.Is(err, ErrShardUnavailable) || errors.Is(a.err, context.DeadlineExceeded) {
				out.Partial = true
				out.Missing = append(out.Missing, name)
				continue
			}
			return SearchOutcome{}, err
		}
		c.metrics.shardAnswered(name)
		if len(a.results) != len(queries) {
			return SearchOutcome{}, fmt.Errorf("shard %s answered %d results for %d queries", name, len(a.results), len(queries))
		}
		for q := range queries {
			out.Results[q] = append(out.Results[q], a.results[q]...)
		}
	}
	for q := range out.Results {
		slices.SortFunc(out.Results[q], compareMatches)
		if len(out.Results[q]) > p.K {
			out.Results[q] = out.Results[q][:p.K]
		}
		if out.Results[q] == nil {
			out.Results[q] = []Match{}
		}
	}
	return out, nil
}

// ShardStats is the stats and health of one shard.
type ShardStats struct {
	Name      string
	Healthy   bool
	Error     string
	Galleries []*matcherv1.GalleryStats
}

// Stats collects every shard's gallery stats, marking those that do not answer.
func (c *Cluster) Stats(ctx context.Context, ws string) []ShardStats {
	out := make([]ShardStats, len(c.shards))
	var wg sync.WaitGroup
	for i, s := range c.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == c.self {
				out[i] = ShardStats{Name: s.name, Healthy: true, Galleries: statsToProto(s.name, c.local.Index().Stats(ws))}
				return
			}
			sctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			resp, err := s.client.GetIndexStats(sctx, &matcherv1.GetIndexStatsRequest{WorkspaceId: ws, Scope: matcherv1.Scope_SCOPE_LOCAL_SHARD})
			if err != nil {
				c.metrics.shardFailed(s.name)
				out[i] = ShardStats{Name: s.name, Error: err.Error()}
				return
			}
			c.metrics.shardAnswered(s.name)
			for _, g := range resp.GetGalleries() {
				g.Shard = s.name
			}
			out[i] = ShardStats{Name: s.name, Healthy: true, Galleries: resp.GetGalleries()}
		}()
	}
	wg.Wait()
	return out
}

// SelfName is the name of this replica's shard.
func (c *Cluster) SelfName() string { return c.shards[c.self].name }

func slicesKeys(m map[int][]Template) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
