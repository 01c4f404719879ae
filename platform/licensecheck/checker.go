// Package licensecheck is the client side of licensing: the cached Checker every
// component uses to ask the licensing service (through its generated client, over the
// connection rpc.Peers gives) whether a unit, feature or counted resource is allowed.
// It lives apart from services/licensing so no component imports another's package.
package licensecheck

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// DefaultCheckerTTL is how long a Checker trusts an answer of the licensing service.
const DefaultCheckerTTL = 5 * time.Second

// Checker is the client other services use to ask the licensing service, through their
// connection to it (rpc.Peers.Conn("licensing")). Answers are cached for a short TTL:
//
//   - Units and features: the verdict, allowed or denied, is cached (it changes only when
//     the license does).
//   - Counted resources: an allowed answer's limit and usage are cached, and the amounts
//     this Checker lets through since are added to that usage, so one process cannot run
//     past a limit on a stale answer. A request that the cached numbers would refuse asks
//     the service again: denials always come from fresh numbers.
//
// Denials are *LimitError, whose gRPC status is RESOURCE_EXHAUSTED (a counted limit) or
// PERMISSION_DENIED (a unit, a feature), with a message naming the limit; returned as is
// (or wrapped) from a handler, the platform's interceptor sends that status. When the
// licensing service cannot be reached, checks fail (closed) with its status, e.g.
// UNAVAILABLE.
type Checker struct {
	client licensingv1.LicensingServiceClient
	ttl    time.Duration
	now    func() time.Time

	mu        sync.Mutex
	resources map[licensingv1.Resource]*resourceEntry
	verdicts  map[verdictKey]cachedVerdict
}

type resourceEntry struct {
	resp    *licensingv1.CheckResponse
	granted int64
	fetched time.Time
}

type verdictKey struct {
	unit    bool
	subject string
}

type cachedVerdict struct {
	resp    *licensingv1.CheckResponse
	fetched time.Time
}

// CheckerOption configures a Checker.
type CheckerOption func(*Checker)

// WithTTL sets how long answers are cached; 0 disables the cache.
func WithTTL(ttl time.Duration) CheckerOption { return func(c *Checker) { c.ttl = ttl } }

// WithClock sets the clock the cache ages by (tests).
func WithClock(now func() time.Time) CheckerOption { return func(c *Checker) { c.now = now } }

// NewChecker returns a Checker calling the licensing service through conn.
func NewChecker(conn grpc.ClientConnInterface, opts ...CheckerOption) *Checker {
	c := &Checker{
		client:    licensingv1.NewLicensingServiceClient(conn),
		ttl:       DefaultCheckerTTL,
		now:       time.Now,
		resources: map[licensingv1.Resource]*resourceEntry{},
		verdicts:  map[verdictKey]cachedVerdict{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *Checker) fresh(fetched time.Time) bool {
	return c.ttl > 0 && c.now().Sub(fetched) < c.ttl
}

// CheckResource returns nil when `requested` more of r (persons, agents, cameras) fit the
// license, a *LimitError (RESOURCE_EXHAUSTED) when they do not. requested <= 0 counts as 1.
func (c *Checker) CheckResource(ctx context.Context, workspaceID string, r licensingv1.Resource, requested int64) error {
	if requested <= 0 {
		requested = 1
	}
	c.mu.Lock()
	if e, ok := c.resources[r]; ok && c.fresh(e.fetched) &&
		(e.resp.GetLimit() == 0 || e.resp.GetUsed()+e.granted+requested <= e.resp.GetLimit()) {
		e.granted += requested
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()

	resp, err := c.client.Check(ctx, &licensingv1.CheckRequest{
		WorkspaceId: workspaceID,
		Subject:     &licensingv1.CheckRequest_Resource{Resource: r},
		Requested:   requested,
	})
	if err != nil {
		return fmt.Errorf("license check of %v: %w", r, err)
	}
	if !resp.GetAllowed() {
		c.mu.Lock()
		delete(c.resources, r)
		c.mu.Unlock()
		return newLimitError(resp, requested)
	}
	c.mu.Lock()
	c.resources[r] = &resourceEntry{resp: resp, granted: requested, fetched: c.now()}
	c.mu.Unlock()
	return nil
}

// CheckUnit returns nil when the Image API unit is enabled, a *LimitError
// (PERMISSION_DENIED) when not.
func (c *Checker) CheckUnit(ctx context.Context, workspaceID, unit string) error {
	return c.checkNamed(ctx, verdictKey{unit: true, subject: unit}, &licensingv1.CheckRequest{
		WorkspaceId: workspaceID, Subject: &licensingv1.CheckRequest_Unit{Unit: unit},
	})
}

// CheckFeature returns nil when the feature ("activity-search", "ann-index", ...)
// is enabled, a *LimitError (PERMISSION_DENIED) when not.
func (c *Checker) CheckFeature(ctx context.Context, workspaceID, feature string) error {
	return c.checkNamed(ctx, verdictKey{subject: feature}, &licensingv1.CheckRequest{
		WorkspaceId: workspaceID, Subject: &licensingv1.CheckRequest_Feature{Feature: feature},
	})
}

func (c *Checker) checkNamed(ctx context.Context, key verdictKey, req *licensingv1.CheckRequest) error {
	c.mu.Lock()
	v, ok := c.verdicts[key]
	c.mu.Unlock()
	if !ok || !c.fresh(v.fetched) {
		resp, err := c.client.Check(ctx, req)
		if err != nil {
			return fmt.Errorf("license check of %q: %w", key.subject, err)
		}
		v = cachedVerdict{resp: resp, fetched: c.now()}
		c.mu.Lock()
		c.verdicts[key] = v
		c.mu.Unlock()
	}
	if !v.resp.GetAllowed() {
		return newLimitError(v.resp, 0)
	}
	return nil
}

// ReportUsage reports absolute counts (the owner of a resource calls it at start and after
// every change) and forgets the cached usage of the reported resources.
func (c *Checker) ReportUsage(ctx context.Context, reports ...*licensingv1.UsageReport) error {
	if _, err := c.client.ReportUsage(ctx, &licensingv1.ReportUsageRequest{Reports: reports}); err != nil {
		return fmt.Errorf("report license usage: %w", err)
	}
	c.mu.Lock()
	for _, r := range reports {
		delete(c.resources, r.GetResource())
	}
	c.mu.Unlock()
	return nil
}

// Invalidate forgets every cached answer.
func (c *Checker) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.resources)
	clear(c.verdicts)
}

// LimitError is a license denial. Its gRPC status is RESOURCE_EXHAUSTED for a counted
// limit and PERMISSION_DENIED for a unit or feature, with an errdetails.ErrorInfo (domain
// "vigil", reason LICENSE_LIMIT_REACHED, LICENSE_UNIT_NOT_ENABLED or
// LICENSE_FEATURE_NOT_ENABLED, metadata naming the limit) for clients that branch on it.
type LimitError struct {
	Denial licensingv1.Denial
	// Message names the limit, unit or feature.
	Message string
	// For counted limits.
	LimitName string
	Limit     int64
	Used      int64
	Requested int64
}

func newLimitError(resp *licensingv1.CheckResponse, requested int64) *LimitError {
	return &LimitError{
		Denial: resp.GetDenial(), Message: resp.GetMessage(),
		LimitName: resp.GetLimitName(), Limit: resp.GetLimit(), Used: resp.GetUsed(), Requested: requested,
	}
}

func (e *LimitError) Error() string { return e.Message }

// Code is the gRPC code of the denial.
func (e *LimitError) Code() codes.Code {
	if e.Denial == licensingv1.Denial_DENIAL_LIMIT_REACHED {
		return codes.ResourceExhausted
	}
	return codes.PermissionDenied
}

// GRPCStatus makes the error its own gRPC status.
func (e *LimitError) GRPCStatus() *status.Status {
	st := status.New(e.Code(), e.Message)
	info := &errdetails.ErrorInfo{Domain: "vigil", Metadata: map[string]string{}}
	switch e.Denial {
	case licensingv1.Denial_DENIAL_LIMIT_REACHED:
		info.Reason = "LICENSE_LIMIT_REACHED"
		info.Metadata["limit"] = e.LimitName
		info.Metadata["max"] = strconv.FormatInt(e.Limit, 10)
		info.Metadata["used"] = strconv.FormatInt(e.Used, 10)
	case licensingv1.Denial_DENIAL_UNIT_NOT_ENABLED:
		info.Reason = "LICENSE_UNIT_NOT_ENABLED"
	default:
		info.Reason = "LICENSE_FEATURE_NOT_ENABLED"
	}
	if withDetails, err := st.WithDetails(info); err == nil {
		return withDetails
	}
	return st
}
