package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
	matcherv1 "github.com/vigilhq/vigil/gen/go/vigil/matcher/v1"
)

// ObjectStore keeps photo images (the platform's object store).
type ObjectStore interface {
	Put(ctx context.Context, key string, data []byte, contentType string) error
	Get(ctx context.Context, key string) ([]byte, string, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Face is the one face found in a photo, with its template.
type Face struct {
	Box        *commonv1.Box
	Confidence float32
	Template   *commonv1.Template
}

// FaceExtractor finds the faces in an image and extracts a template for each (the
// Image API). Errors are gRPC statuses from the Image API (INVALID_ARGUMENT for an
// image it cannot decode).
type FaceExtractor interface {
	Faces(ctx context.Context, image []byte) ([]Face, error)
}

func (b *Backend) matcher() (matcherv1.MatcherServiceClient, error) {
	conn, err := b.peers.Conn("matcher")
	if err != nil {
		return nil, fmt.Errorf("matcher: %v: %w", err, ErrUnavailable)
	}
	return matcherv1.NewMatcherServiceClient(conn), nil
}

func (b *Backend) licensing() (licensingv1.LicensingServiceClient, error) {
	conn, err := b.peers.Conn("licensing")
	if err != nil {
		return nil, fmt.Errorf("licensing: %v: %w", err, ErrUnavailable)
	}
	return licensingv1.NewLicensingServiceClient(conn), nil
}

// peerErr wraps an error of a peer call. Codes that describe the request (invalid
// image, wrong model) pass through; unreachable peers become ErrUnavailable.
func peerErr(peer string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", peer, err)
	}
	switch st.Code() {
	case codes.Unavailable, codes.Unimplemented:
		return fmt.Errorf("%s: %s: %w", peer, st.Message(), ErrUnavailable)
	case codes.InvalidArgument:
		return fmt.Errorf("%s: %s: %w", peer, st.Message(), ErrInvalid)
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: %s: %w", peer, st.Message(), ErrFailedCondition)
	case codes.ResourceExhausted:
		return fmt.Errorf("%s: %s: %w", peer, st.Message(), ErrLimit)
	case codes.PermissionDenied:
		return fmt.Errorf("%s: %s: %w", peer, st.Message(), ErrPermission)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", peer, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", peer, err)
}

// peerCtx bounds a peer call.
func (b *Backend) peerCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.PeerTimeout)
}

// checkLimit asks licensing whether n more of resource may be added.
func (b *Backend) checkLimit(ctx context.Context, sc scope, resource licensingv1.Resource, n int64) error {
	b.awaitUsageReport(ctx)
	lic, err := b.licensing()
	if err != nil {
		return err
	}
	ctx, cancel := b.peerCtx(ctx)
	defer cancel()
	resp, err := lic.Check(ctx, &licensingv1.CheckRequest{
		WorkspaceId: sc.workspace.String(),
		Subject:     &licensingv1.CheckRequest_Resource{Resource: resource},
		Requested:   n,
	})
	if err != nil {
		return peerErr("licensing", err)
	}
	b.noteHeadroom(resource, resp.GetLimit(), resp.GetUsed())
	if !resp.GetAllowed() {
		msg := resp.GetMessage()
		if msg == "" {
			msg = fmt.Sprintf("license limit %s reached", resp.GetLimitName())
		}
		if resp.GetDenial() == licensingv1.Denial_DENIAL_LIMIT_REACHED {
			return fmt.Errorf("%s: %w", msg, ErrLimit)
		}
		return fmt.Errorf("%s: %w", msg, ErrPermission)
	}
	return nil
}

// usageKey is one counted resource of one workspace.
type usageKey struct {
	workspace uuid.UUID
	resource  licensingv1.Resource
}

var usageTables = map[licensingv1.Resource]string{
	licensingv1.Resource_RESOURCE_PERSONS: "persons",
	licensingv1.Resource_RESOURCE_AGENTS:  "agents",
	licensingv1.Resource_RESOURCE_CAMERAS: "cameras",
}

// Within usageMargin(limit) of a limit, usage is reported before the changing call
// returns; further away, reports are batched in the background every usageFlushEvery.
// The margin must exceed what can be created while a batch waits (hundreds per second
// times usageFlushEvery), so that licensing's count is exact by the time it matters.
const usageFlushEvery = 100 * time.Millisecond

func usageMargin(limit int64) int64 { return max(256, limit/10) }

// noteHeadroom remembers how close to its limit a resource was at the last check.
func (b *Backend) noteHeadroom(resource licensingv1.Resource, limit, used int64) {
	b.usageMu.Lock()
	defer b.usageMu.Unlock()
	if b.usageNear == nil {
		b.usageNear = map[licensingv1.Resource]bool{}
	}
	b.usageNear[resource] = limit > 0 && used+usageMargin(limit) >= limit
}

// reportUsage tells licensing the workspace's current count of resource. Reports are
// absolute counts and licensing keeps the last one it receives. Near a limit (or before
// any check told us the headroom) the report is sent before the changing call returns,
// so the next check counts it; far from any limit it is batched with others and sent
// within usageFlushEvery by the background flusher, which halves the cost of a creation.
// Best effort: a failed report is logged, not returned (licensing also learns the counts
// at start).
func (b *Backend) reportUsage(ctx context.Context, sc scope, resource licensingv1.Resource) {
	if _, ok := usageTables[resource]; !ok {
		return
	}
	b.usageMu.Lock()
	if b.usageDirty == nil {
		b.usageDirty = map[usageKey]bool{}
	}
	b.usageDirty[usageKey{sc.workspace, resource}] = true
	near, known := b.usageNear[resource]
	background := b.usageKick != nil && known && !near
	b.usageMu.Unlock()
	if background {
		select {
		case b.usageKick <- struct{}{}:
		default:
		}
		return
	}
	b.flushUsage(ctx)
}

// flushUsage sends every pending usage report in one request. Flushes are serialised, so
// the last report licensing receives is the latest count.
func (b *Backend) flushUsage(ctx context.Context) {
	b.usageFlushMu.Lock()
	defer b.usageFlushMu.Unlock()
	b.usageMu.Lock()
	keys := make([]usageKey, 0, len(b.usageDirty))
	for k := range b.usageDirty {
		keys = append(keys, k)
	}
	clear(b.usageDirty)
	b.usageMu.Unlock()
	if len(keys) == 0 {
		return // a flush that started after our mark sent it
	}
	reports := make([]*licensingv1.UsageReport, 0, len(keys))
	for _, k := range keys {
		var n int64
		if err := b.db.pool.QueryRow(ctx, `SELECT count(*) FROM `+usageTables[k.resource]+` WHERE workspace_id = $1`, k.workspace).Scan(&n); err != nil {
			b.log.WarnContext(ctx, "count for usage report", "resource", k.resource.String(), "err", err)
			return
		}
		reports = append(reports, &licensingv1.UsageReport{WorkspaceId: k.workspace.String(), Resource: k.resource, Count: n})
	}
	lic, err := b.licensing()
	if err == nil {
		ctx, cancel := b.peerCtx(ctx)
		defer cancel()
		_, err = lic.ReportUsage(ctx, &licensingv1.ReportUsageRequest{Reports: reports})
	}
	if err != nil {
		b.log.WarnContext(ctx, "usage report to licensing failed", "reports", len(reports), "err", err)
	}
}

var errNoExtractor = errors.New("no Image API client configured")
