package backend

import (
	"context"

	"github.com/google/uuid"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
)

// AuditServer implements backendv1.AuditServiceServer.
type AuditServer struct {
	backendv1.UnimplementedAuditServiceServer
	b *Backend
}

func auditToProto(a *AuditEntry) *backendv1.AuditEntry {
	out := &backendv1.AuditEntry{
		Id: a.ID.String(), Time: ts(a.Time), SubjectKind: commonv1.Access_Kind(a.SubjectKind), SubjectId: a.SubjectID,
		SubjectName: a.SubjectName, Method: a.Method, Target: a.Target, PeerAddr: a.PeerAddr, Outcome: a.Outcome,
		Message: a.Message, RequestId: a.RequestID,
	}
	if a.WorkspaceID != nil {
		out.WorkspaceId = a.WorkspaceID.String()
	}
	return out
}

func (s *AuditServer) ListAuditEntries(ctx context.Context, req *backendv1.ListAuditEntriesRequest) (*backendv1.ListAuditEntriesResponse, error) {
	sc, err := workspaceScope(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	f := AuditFilter{Method: req.GetMethod(), SubjectID: req.GetSubjectId(), Target: req.GetTarget()}
	if tr := req.GetTimeRange(); tr != nil {
		if tr.StartTime != nil {
			f.Start = tr.StartTime.AsTime()
		}
		if tr.EndTime != nil {
			f.End = tr.EndTime.AsTime()
		}
	}
	es, next, err := s.b.ListAudit(ctx, sc, f, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := &backendv1.ListAuditEntriesResponse{NextPageToken: next}
	for _, e := range es {
		out.Entries = append(out.Entries, auditToProto(e))
	}
	return out, nil
}

func (s *AuditServer) RecordAuditEntries(ctx context.Context, req *backendv1.RecordAuditEntriesRequest) (*backendv1.RecordAuditEntriesResponse, error) {
	entries := make([]*AuditEntry, 0, len(req.GetEntries()))
	for _, e := range req.GetEntries() {
		a := &AuditEntry{
			SubjectKind: int16(e.GetSubjectKind()), SubjectID: e.GetSubjectId(), SubjectName: e.GetSubjectName(),
			Method: e.GetMethod(), Target: e.GetTarget(), PeerAddr: e.GetPeerAddr(), Outcome: e.GetOutcome(),
			Message: e.GetMessage(), RequestID: e.GetRequestId(),
		}
		if e.Time != nil {
			a.Time = e.Time.AsTime()
		}
		if e.GetWorkspaceId() != "" {
			ws, err := uuid.Parse(e.GetWorkspaceId())
			if err != nil {
				return nil, toStatus(invalid("entries.workspace_id", "not a valid id"))
			}
			a.WorkspaceID = &ws
		}
		entries = append(entries, a)
	}
	if err := s.b.RecordAudit(ctx, entries); err != nil {
		return nil, toStatus(err)
	}
	return &backendv1.RecordAuditEntriesResponse{}, nil
}
