package main

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

// runUpstream serves the bench's backends: a tiny HTTP/1.1 answer and a
// gRPC TestService whose UnaryCall echoes the payload.
func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP listen address")
	grpcAddr := fs.String("grpc", "127.0.0.1:0", "gRPC listen address")
	fs.Parse(args)

	body := []byte("hello from the upstream\n")
	hln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A body is read whole before the answer, as a real API reads an
		// upload (the uploads scenario): answered early, a proxy may
		// have to close the client's connection (nginx does).
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})}
	go hs.Serve(hln)

	gln, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return err
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, echo{})
	go gs.Serve(gln)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	gs.Stop()
	return hs.Close()
}

type echo struct {
	testpb.UnimplementedTestServiceServer
}

func (echo) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: in.GetPayload()}, nil
}
