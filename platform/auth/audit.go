package auth

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	backendv1 "github.com/vigilhq/vigil/gen/go/vigil/backend/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// AuditSink stores audit entries.
type AuditSink interface {
	Record(ctx context.Context, entries []*backendv1.AuditEntry) error
}

// BackendAuditSink records through the backend's internal AuditService, wherever it runs.
type BackendAuditSink struct{ Peers rpc.Peers }

// Record implements AuditSink.
func (s BackendAuditSink) Record(ctx context.Context, entries []*backendv1.AuditEntry) error {
	conn, err := s.Peers.Conn("backend")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err = backendv1.NewAuditServiceClient(conn).RecordAuditEntries(ctx, &backendv1.RecordAuditEntriesRequest{Entries: entries})
	return err
}

// Auditor records every mutating call (the methods whose access option says mutating):
// who, which workspace, which method and target, when, from where, and the outcome.
// Entries are written synchronously after the call, so an entry exists for every change
// that a client saw succeed; a failure to record is logged, not returned (the change
// has happened by then).
type Auditor struct {
	table   *AccessTable
	sink    AuditSink
	log     *slog.Logger
	metrics *Metrics
}

// NewAuditor returns an Auditor writing to sink; metrics may be nil.
func NewAuditor(table *AccessTable, sink AuditSink, log *slog.Logger, metrics *Metrics) *Auditor {
	return &Auditor{table: table, sink: sink, log: log, metrics: metrics}
}

type auditedKey struct{}

// UnaryServerInterceptor audits mutating unary calls. It must run after authorization
// (it reads the principal). A call audited once is not audited again by a second
// Auditor interceptor in the chain.
func (a *Auditor) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !a.table.Lookup(info.FullMethod).GetMutating() || ctx.Value(auditedKey{}) != nil {
			return h(ctx, req)
		}
		ctx = context.WithValue(ctx, auditedKey{}, true)
		resp, err := h(ctx, req)
		reqMsg, _ := req.(proto.Message)
		respMsg, _ := resp.(proto.Message)
		a.record(ctx, info.FullMethod, rpc.PrincipalFrom(ctx), reqMsg, respMsg, err)
		return resp, err
	}
}

// StreamServerInterceptor audits mutating streaming calls (once, at their end).
func (a *Auditor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx := ss.Context()
		if !a.table.Lookup(info.FullMethod).GetMutating() || ctx.Value(auditedKey{}) != nil {
			return h(srv, ss)
		}
		err := h(srv, &ctxStream{ServerStream: ss, ctx: context.WithValue(ctx, auditedKey{}, true)})
		a.record(ctx, info.FullMethod, rpc.PrincipalFrom(ctx), nil, nil, err)
		return err
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func (a *Auditor) recordDenied(ctx context.Context, method string, p *rpc.Principal, err error) {
	if p == nil {
		p = &rpc.Principal{PeerAddr: PeerAddr(ctx)}
	}
	a.record(ctx, method, p, nil, nil, err)
}

func (a *Auditor) record(ctx context.Context, method string, p *rpc.Principal, req, resp proto.Message, callErr error) {
	st := status.Convert(callErr)
	e := &backendv1.AuditEntry{
		Time:    timestamppb.Now(),
		Method:  method,
		Target:  Target(req, resp),
		Outcome: code.Code(st.Code()).String(),
	}
	if callErr != nil {
		e.Message = st.Message()
	}
	if p != nil {
		e.WorkspaceId, e.SubjectKind, e.SubjectId, e.SubjectName, e.PeerAddr = p.WorkspaceID, p.Kind, p.SubjectID, p.SubjectName, p.PeerAddr
	}
	if e.PeerAddr == "" {
		e.PeerAddr = PeerAddr(ctx)
	}
	e.RequestId = stringField(req, "request_id")
	if e.RequestId == "" {
		e.RequestId = log.RequestID(ctx)
	}
	if err := a.sink.Record(ctx, []*backendv1.AuditEntry{e}); err != nil {
		a.metrics.auditFailed()
		a.log.ErrorContext(ctx, "audit entry not recorded", "method", method, "outcome", e.Outcome, log.Err(err))
	}
}

// Target names the object a call acts on, read from the request: "person/<id>" for a
// top-level person_id field, or for a message field person{id}; else from the response
// (creations learn their id there).
func Target(req, resp proto.Message) string {
	if t := targetOf(req); t != "" {
		return t
	}
	return targetOf(resp)
}

func targetOf(m proto.Message) string {
	if m == nil {
		return ""
	}
	r := m.ProtoReflect()
	if !r.IsValid() {
		return ""
	}
	fields := r.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		name := string(f.Name())
		if f.Kind() == protoreflect.StringKind && !f.IsList() && !f.IsMap() && strings.HasSuffix(name, "_id") &&
			name != "request_id" && name != "workspace_id" {
			if v := r.Get(f).String(); v != "" {
				return strings.TrimSuffix(name, "_id") + "/" + v
			}
		}
	}
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.Kind() != protoreflect.MessageKind || f.IsList() || f.IsMap() || !r.Has(f) {
			continue
		}
		sub := r.Get(f).Message()
		if idf := sub.Descriptor().Fields().ByName("id"); idf != nil && idf.Kind() == protoreflect.StringKind {
			if v := sub.Get(idf).String(); v != "" {
				return fmt.Sprintf("%s/%s", f.Name(), v)
			}
		}
	}
	return ""
}

func stringField(m proto.Message, name string) string {
	if m == nil {
		return ""
	}
	r := m.ProtoReflect()
	f := r.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil || f.Kind() != protoreflect.StringKind || f.IsList() {
		return ""
	}
	return r.Get(f).String()
}
