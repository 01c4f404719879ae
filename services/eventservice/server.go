package eventservice

import (
	"log/slog"

	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
)

// Server implements eventservicev1.EventServiceServer. Every RPC is still the generated
// UnimplementedEventServiceServer's: it answers UNIMPLEMENTED until the component's own issue
// fills it in.
type Server struct {
	eventservicev1.UnimplementedEventServiceServer
}

// NewServer returns the component's server, and says once in the log that it only
// answers UNIMPLEMENTED, so an operator does not wonder why nothing happens.
func NewServer(logger *slog.Logger) *Server {
	logger.Info("contract only: every RPC answers UNIMPLEMENTED until this component is implemented")
	return &Server{}
}
