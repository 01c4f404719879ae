// Package testsvc is a real gRPC service for testing the platform's plumbing: grpc's
// own interop TestService, whose behaviour each request chooses (a status to return, a
// panic, a plain Go error, a wait), so servers, gateways and shutdown can be tested
// without any Vigil component.
package testsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Name is the proto service name.
const Name = "grpc.testing.TestService"

// Payload bodies that choose a behaviour of UnaryCall.
const (
	Panic      = "panic"       // the handler panics
	PlainError = "plain-error" // the handler returns a status-less Go error
	Wait       = "wait"        // the handler blocks until Release is closed (or the call ends)
)

// Server implements TestService.
type Server struct {
	testpb.UnimplementedTestServiceServer

	// Release unblocks Wait calls when closed.
	Release chan struct{}
	// Waiting counts calls currently blocked in Wait.
	Waiting atomic.Int32
}

// New returns a Server.
func New() *Server { return &Server{Release: make(chan struct{})} }

// Service is the rpc.Service registering s.
func (s *Server) Service() rpc.Service {
	return rpc.Service{
		Name:     Name,
		Register: func(r grpc.ServiceRegistrar) { testpb.RegisterTestServiceServer(r, s) },
		Gateway:  RegisterGateway,
	}
}

// EmptyCall answers with the caller's principal subject and request id in the header.
func (s *Server) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	md := metadata.Pairs("x-seen-request-id", log.RequestID(ctx))
	if p := rpc.PrincipalFrom(ctx); p != nil {
		md.Append("x-principal", p.SubjectID)
	}
	_ = grpc.SetHeader(ctx, md)
	return &testpb.Empty{}, nil
}

// UnaryCall echoes the payload, or misbehaves as the payload body asks, or returns the
// requested response status.
func (s *Server) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	body := string(req.GetPayload().GetBody())
	switch body {
	case Panic:
		panic("testsvc asked to panic")
	case PlainError:
		return nil, fmt.Errorf("load row 42: %w", errors.New("connection reset by peer (secret detail)"))
	case Wait:
		s.Waiting.Add(1)
		defer s.Waiting.Add(-1)
		select {
		case <-s.Release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload(), Username: principalName(ctx)}, nil
}

// FullDuplexCall echoes every request's payload until the client closes.
func (s *Server) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if string(req.GetPayload().GetBody()) == PlainError {
			return errors.New("stream broke (secret detail)")
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

func principalName(ctx context.Context) string {
	if p := rpc.PrincipalFrom(ctx); p != nil {
		return p.SubjectID
	}
	return ""
}

// TokenAuthorizer is a real rpc.Authorizer for tests: "authorization: Bearer <Token>"
// or "x-api-key: <Token>" authenticates as subject "tester"; anything else is
// Unauthenticated.
type TokenAuthorizer struct{ Token string }

// Authorize implements rpc.Authorizer.
func (a TokenAuthorizer) Authorize(ctx context.Context, _ string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(rpc.MetadataAuthorization)
	if len(v) == 0 {
		// The API-key header form: "x-api-key: <Token>".
		for _, k := range md.Get("x-api-key") {
			v = append(v, "Bearer "+k)
		}
	}
	if len(v) == 0 || v[0] != "Bearer "+a.Token {
		return nil, status.Error(codes.Unauthenticated, "missing or wrong token")
	}
	return rpc.WithPrincipal(ctx, &rpc.Principal{SubjectID: "tester"}), nil
}
