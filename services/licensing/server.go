package licensing

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	licensingv1 "github.com/vigilhq/vigil/gen/go/vigil/licensing/v1"
)

// Server implements licensingv1.LicensingServiceServer over an Enforcer. It only
// converts types and maps errors.
type Server struct {
	licensingv1.UnimplementedLicensingServiceServer

	enforcer *Enforcer
}

// NewServer returns the gRPC service of e.
func NewServer(e *Enforcer) *Server { return &Server{enforcer: e} }

// GetLicense returns the license in force.
func (s *Server) GetLicense(context.Context, *licensingv1.GetLicenseRequest) (*licensingv1.GetLicenseResponse, error) {
	return &licensingv1.GetLicenseResponse{License: licenseProto(s.enforcer.Snapshot())}, nil
}

// GetUsage returns usage against every counted limit.
func (s *Server) GetUsage(ctx context.Context, _ *licensingv1.GetUsageRequest) (*licensingv1.GetUsageResponse, error) {
	usage, err := s.enforcer.Usage(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &licensingv1.GetUsageResponse{Usage: make([]*licensingv1.LimitUsage, 0, len(usage))}
	for _, u := range usage {
		out.Usage = append(out.Usage, &licensingv1.LimitUsage{
			Resource: u.Resource, LimitName: u.LimitName, Limit: u.Limit, Used: u.Used,
			ReportTime: optionalTime(u.ReportTime),
		})
	}
	return out, nil
}

// Check answers whether an action is allowed.
func (s *Server) Check(ctx context.Context, req *licensingv1.CheckRequest) (*licensingv1.CheckResponse, error) {
	if req.GetWorkspaceId() == "" {
		return nil, toStatus(fmt.Errorf("%w: workspace_id: required", ErrInvalidArgument))
	}
	var (
		v   Verdict
		err error
	)
	switch subject := req.GetSubject().(type) {
	case *licensingv1.CheckRequest_Resource:
		v, err = s.enforcer.CheckResource(ctx, subject.Resource, req.GetRequested())
	case *licensingv1.CheckRequest_Unit:
		v, err = s.enforcer.CheckUnit(subject.Unit)
	case *licensingv1.CheckRequest_Feature:
		v, err = s.enforcer.CheckFeature(subject.Feature)
	default:
		err = fmt.Errorf("%w: subject: one of resource, unit, feature is required", ErrInvalidArgument)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &licensingv1.CheckResponse{
		Allowed: v.Allowed, Denial: v.Denial, Message: v.Message,
		LimitName: v.LimitName, Limit: v.Limit, Used: v.Used,
	}, nil
}

// ReportUsage records absolute usage counts.
func (s *Server) ReportUsage(ctx context.Context, req *licensingv1.ReportUsageRequest) (*licensingv1.ReportUsageResponse, error) {
	reports := make([]UsageReport, 0, len(req.GetReports()))
	for _, r := range req.GetReports() {
		reports = append(reports, UsageReport{WorkspaceID: r.GetWorkspaceId(), Resource: r.GetResource(), Count: r.GetCount()})
	}
	if err := s.enforcer.ReportUsage(ctx, reports); err != nil {
		return nil, toStatus(err)
	}
	return &licensingv1.ReportUsageResponse{}, nil
}

// Reload reads the license file again; on failure the license in force stays.
func (s *Server) Reload(context.Context, *licensingv1.ReloadRequest) (*licensingv1.ReloadResponse, error) {
	if _, err := s.enforcer.Reload(); err != nil {
		return nil, toStatus(err)
	}
	return &licensingv1.ReloadResponse{License: licenseProto(s.enforcer.Snapshot())}, nil
}

func licenseProto(s Snapshot) *licensingv1.License {
	l := s.License
	out := &licensingv1.License{
		LicenseId: l.LicenseID,
		Licensee:  l.Licensee,
		Limits: &licensingv1.Limits{
			MaxPersons: l.Limits.MaxPersons, MaxAgents: l.Limits.MaxAgents, MaxCameras: l.Limits.MaxCameras,
		},
		ImageApiUnits:   append([]string(nil), l.ImageAPIUnits...),
		Features:        append([]string(nil), l.Features...),
		Source:          s.Source,
		State:           s.State,
		KeyId:           l.KeyID,
		IssueTime:       optionalTime(l.Issued),
		LoadTime:        optionalTime(s.LoadTime),
		LastReloadError: s.LastReloadError,
	}
	if l.Expires != nil {
		out.ExpireTime = timestamppb.New(*l.Expires)
	}
	return out
}

func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
