// Package backend is Vigil's main API: workspaces, users, API keys, persons with photos,
// groups, agents and cameras, events query, webhooks and the audit log
// (vigil.backend.v1). Other components reach it only through its generated clients.
package backend

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	"github.com/vigilhq/vigil/platform/auth"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Invalidator drops cached credential lookups of a subject (a user, API key or agent) so
// a revocation takes effect at once. The platform authorizer provides it; without one,
// caches expire on their own TTL.
type Invalidator = auth.Invalidator

// Backend holds what every service of the package shares: the database, the
// configuration, peers (Image API, matcher, licensing) and the object store.
type Backend struct {
	db      *DB
	cfg     Config
	log     *slog.Logger
	peers   rpc.Peers
	objects ObjectStore
	faces   FaceExtractor
	invalid Invalidator
	cards   *personCards // nil: GetPerson reads the database every time

	// usageReported is closed once licensing has every workspace's counts (nil when the
	// start-up report is not run, as in NewBackend without Module).
	usageReported chan struct{}
	usageOnce     sync.Once
	usageMu       sync.Mutex // guards usageDirty
	usageDirty    map[usageKey]bool
	usageFlushMu  sync.Mutex // serialises usage reports
	usageNear     map[licensingv1.Resource]bool
	usageKick     chan struct{} // nil: no background flusher, every report is sent at once
}

// NewBackend builds the shared core. objects, faces and inv may be nil: photo calls then
// fail with UNAVAILABLE, and credential caches expire on their own.
func NewBackend(pool *pgxpool.Pool, cfg Config, log *slog.Logger, peers rpc.Peers, objects ObjectStore, faces FaceExtractor, inv Invalidator) *Backend {
	return &Backend{db: &DB{pool: pool}, cfg: cfg, log: log, peers: peers, objects: objects, faces: faces, invalid: inv}
}

// invalidateSubject tells the authorizer's cache that a subject's credentials changed.
func (b *Backend) invalidateSubject(ctx context.Context, subjectID string) {
	if b.invalid != nil {
		b.db.afterCommit(ctx, func() { b.invalid.InvalidateSubject(context.WithoutCancel(ctx), subjectID) })
	}
}
