package testsvc

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// REST routes of the TestService, written the way protoc-gen-grpc-gateway writes them
// (the interop protos carry no google.api.http options).
const (
	UnaryPath = "/v1/test:unary" // POST, body: SimpleRequest
	EmptyPath = "/v1/test:empty" // GET
)

// RegisterGateway registers the REST routes on mux, calling through conn.
func RegisterGateway(_ context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	client := testpb.NewTestServiceClient(conn)
	if err := mux.HandlePath(http.MethodPost, UnaryPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		forward(mux, w, r, "/grpc.testing.TestService/UnaryCall", UnaryPath, func(ctx context.Context, in runtime.Marshaler, opts ...grpc.CallOption) (any, error) {
			var req testpb.SimpleRequest
			if err := in.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
				return nil, status.Errorf(codes.InvalidArgument, "%v", err)
			}
			return client.UnaryCall(ctx, &req, opts...)
		})
	}); err != nil {
		return err
	}
	return mux.HandlePath(http.MethodGet, EmptyPath, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		forward(mux, w, r, "/grpc.testing.TestService/EmptyCall", EmptyPath, func(ctx context.Context, _ runtime.Marshaler, opts ...grpc.CallOption) (any, error) {
			return client.EmptyCall(ctx, &testpb.Empty{}, opts...)
		})
	})
}

func forward(mux *runtime.ServeMux, w http.ResponseWriter, r *http.Request, method, pattern string,
	call func(context.Context, runtime.Marshaler, ...grpc.CallOption) (any, error)) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	in, out := runtime.MarshalerForRequest(mux, r)
	ctx, err := runtime.AnnotateContext(ctx, mux, r, method, runtime.WithHTTPPathPattern(pattern))
	if err != nil {
		runtime.HTTPError(ctx, mux, out, w, r, err)
		return
	}
	var md runtime.ServerMetadata
	resp, err := call(ctx, in, grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD))
	ctx = runtime.NewServerMetadataContext(ctx, md)
	if err != nil {
		runtime.HTTPError(ctx, mux, out, w, r, err)
		return
	}
	runtime.ForwardResponseMessage(ctx, mux, out, w, r, resp.(proto.Message))
}
