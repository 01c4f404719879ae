package backend

import (
	"context"
	"errors"
	"fmt"

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

// reportUsage tells licensing the workspace's current count of resource. Best effort:
// licensing also learns the counts at the backend's start, and a failed report only
// delays enforcement, so it is logged, not returned.
func (b *Backend) reportUsage(ctx context.Context, sc scope, resource licensingv1.Resource) {
	var table string
	switch resource {
	case licensingv1.Resource_RESOURCE_PERSONS:
		table = "persons"
	case licensingv1.Resource_RESOURCE_AGENTS:
		table = "agents"
	case licensingv1.Resource_RESOURCE_CAMERAS:
		table = "cameras"
	default:
		return
	}
	// Reports are absolute counts and licensing keeps the last one it receives: counting
	// and sending under one lock makes the last report sent the latest count, however
	// many creations run at once in this process.
	b.usageMu.Lock()
	defer b.usageMu.Unlock()
	var n int64
	if err := b.db.pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE workspace_id = $1`, sc.workspace).Scan(&n); err != nil {
		b.log.WarnContext(ctx, "count for usage report", "resource", resource.String(), "err", err)
		return
	}
	lic, err := b.licensing()
	if err == nil {
		ctx, cancel := b.peerCtx(ctx)
		defer cancel()
		_, err = lic.ReportUsage(ctx, &licensingv1.ReportUsageRequest{Reports: []*licensingv1.UsageReport{{
			WorkspaceId: sc.workspace.String(), Resource: resource, Count: n,
		}}})
	}
	if err != nil {
		b.log.WarnContext(ctx, "usage report to licensing failed", "resource", resource.String(), "err", err)
	}
}

var errNoExtractor = errors.New("no Image API client configured")
