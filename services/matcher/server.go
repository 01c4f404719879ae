package matcher

import (
	"context"
	"fmt"
	"time"

	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// Server implements matcherv1.MatcherServiceServer: it converts messages, checks
// request limits, and hands the call to the cluster (SCOPE_CLUSTER) or to this
// replica's shard only (SCOPE_LOCAL_SHARD, the calls replicas make to each other).
type Server struct {
	matcherv1.UnimplementedMatcherServiceServer
	cfg     Config
	local   *Matcher
	cluster *Cluster
	metrics *metrics
}

// NewServer returns the gRPC service.
func NewServer(cfg Config, local *Matcher, cluster *Cluster, m *metrics) *Server {
	return &Server{cfg: cfg, local: local, cluster: cluster, metrics: m}
}

func isLocal(s matcherv1.Scope) bool { return s == matcherv1.Scope_SCOPE_LOCAL_SHARD }

func (s *Server) AddTemplates(ctx context.Context, req *matcherv1.AddTemplatesRequest) (*matcherv1.AddTemplatesResponse, error) {
	if n := len(req.GetTemplates()); n > s.cfg.MaxTemplatesPerCall {
		return nil, toStatus(fmt.Errorf("%w: templates: %d above the limit of %d", ErrInvalidArgument, n, s.cfg.MaxTemplatesPerCall))
	}
	ts := templatesFromProto(req.GetTemplates())
	var n int
	var err error
	if isLocal(req.GetScope()) {
		n, err = s.local.AddTemplates(ctx, req.GetWorkspaceId(), ts)
	} else {
		if err = validWorkspace(req.GetWorkspaceId()); err == nil {
			n, err = s.cluster.AddTemplates(ctx, req.GetWorkspaceId(), ts, req.GetRequestId())
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &matcherv1.AddTemplatesResponse{Stored: int32(n)}, nil
}

func (s *Server) RemoveTemplates(ctx context.Context, req *matcherv1.RemoveTemplatesRequest) (*matcherv1.RemoveTemplatesResponse, error) {
	var n int
	var err error
	if isLocal(req.GetScope()) {
		n, err = s.local.RemoveTemplates(ctx, req.GetWorkspaceId(), req.GetTemplateIds(), req.GetPersonIds())
	} else {
		if err = validWorkspace(req.GetWorkspaceId()); err == nil {
			n, err = s.cluster.RemoveTemplates(ctx, req.GetWorkspaceId(), req.GetTemplateIds(), req.GetPersonIds(), req.GetRequestId())
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &matcherv1.RemoveTemplatesResponse{Removed: int32(n)}, nil
}

func (s *Server) UpdatePersonGroups(ctx context.Context, req *matcherv1.UpdatePersonGroupsRequest) (*matcherv1.UpdatePersonGroupsResponse, error) {
	var err error
	if isLocal(req.GetScope()) {
		err = s.local.SetPersonGroups(ctx, req.GetWorkspaceId(), req.GetPersonId(), req.GetGroupIds())
	} else {
		err = validWorkspace(req.GetWorkspaceId())
		if err == nil && req.GetPersonId() == "" {
			err = fmt.Errorf("%w: person_id is required", ErrInvalidArgument)
		}
		if err == nil {
			err = s.cluster.SetPersonGroups(ctx, req.GetWorkspaceId(), req.GetPersonId(), req.GetGroupIds(), req.GetRequestId())
		}
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &matcherv1.UpdatePersonGroupsResponse{}, nil
}

func (s *Server) Search(ctx context.Context, req *matcherv1.SearchRequest) (*matcherv1.SearchResponse, error) {
	start := time.Now()
	if err := s.checkSearch(req); err != nil {
		return nil, toStatus(err)
	}
	model, queries, err := queriesFromProto(req.GetQueries())
	if err != nil {
		return nil, toStatus(err)
	}
	p := SearchParams{K: int(req.GetTopK()), Threshold: -2, Groups: req.GetGroupIds(),
		Mode: searchModeFromProto(req.GetMode()), NProbe: int(req.GetNprobe())}
	if req.MinScore != nil {
		p.Threshold = req.GetMinScore()
	}
	mode := req.GetMode().String()
	if isLocal(req.GetScope()) {
		res, err := s.local.Search(ctx, req.GetWorkspaceId(), model, queries, p)
		if err != nil {
			return nil, toStatus(err)
		}
		s.metrics.observeSearch("local", mode, start)
		return &matcherv1.SearchResponse{Results: resultsToProto(res)}, nil
	}
	out, err := s.cluster.Search(ctx, req.GetWorkspaceId(), model, queries, p)
	if err != nil {
		return nil, toStatus(err)
	}
	s.metrics.observeSearch("cluster", mode, start)
	return &matcherv1.SearchResponse{Results: resultsToProto(out.Results), Partial: out.Partial, MissingShards: out.Missing}, nil
}

func (s *Server) checkSearch(req *matcherv1.SearchRequest) error {
	if err := validWorkspace(req.GetWorkspaceId()); err != nil {
		return err
	}
	switch n := len(req.GetQueries()); {
	case n == 0:
		return fmt.Errorf("%w: queries: at least one is required", ErrInvalidArgument)
	case n > s.cfg.MaxQueries:
		return fmt.Errorf("%w: queries: %d above the limit of %d", ErrInvalidArgument, n, s.cfg.MaxQueries)
	}
	if k := req.GetTopK(); k < 0 || int(k) > s.cfg.MaxTopK {
		return fmt.Errorf("%w: top_k must be within 0..%d", ErrInvalidArgument, s.cfg.MaxTopK)
	}
	if req.GetNprobe() < 0 {
		return fmt.Errorf("%w: nprobe must not be negative", ErrInvalidArgument)
	}
	return nil
}

func (s *Server) GetIndexStats(ctx context.Context, req *matcherv1.GetIndexStatsRequest) (*matcherv1.GetIndexStatsResponse, error) {
	if isLocal(req.GetScope()) {
		return &matcherv1.GetIndexStatsResponse{Galleries: statsToProto(s.cluster.SelfName(), s.local.Index().Stats(req.GetWorkspaceId()))}, nil
	}
	resp := &matcherv1.GetIndexStatsResponse{}
	for _, sh := range s.cluster.Stats(ctx, req.GetWorkspaceId()) {
		resp.Galleries = append(resp.Galleries, sh.Galleries...)
		resp.Shards = append(resp.Shards, &matcherv1.ShardHealth{Shard: sh.Name, Healthy: sh.Healthy, Error: sh.Error})
	}
	return resp, nil
}

var _ matcherv1.MatcherServiceServer = (*Server)(nil)
