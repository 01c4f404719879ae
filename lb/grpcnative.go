package lb

import "net"

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
