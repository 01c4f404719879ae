package lb

import (
	"net"

	"google.golang.org/grpc/metadata"
)

// grpcEngine serves the h2c connections of a native_grpc listener: Serve
// until the listener closes, GracefulStop drains calls in flight, Stop
// ends them.
type grpcEngine interface {
	Serve(net.Listener) error
	GracefulStop()
	Stop()
}

// newGRPCServer is the listener's native gRPC engine: the HTTP/2 frame
// relay (h2relay.go).
func (s *Server) newGRPCServer(l *listener) grpcEngine {
	return &h2Relay{s: s, l: l}
}

// firstMD is the first value of a metadata key (the access log reads the
// traceparent with it).
func firstMD(md metadata.MD, key string) string {
	if v := md[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
