package agentsync

import (
	"log/slog"

	agentsyncv1 "github.com/vigilhq/vigil/gen/go/vigil/agentsync/v1"
)

// Server implements agentsyncv1.AgentSyncServiceServer. Every RPC is still the generated
// UnimplementedAgentSyncServiceServer's: it answers UNIMPLEMENTED until the component's own issue
// fills it in.
type Server struct {
	agentsyncv1.UnimplementedAgentSyncServiceServer
}

// NewServer returns the component's server, and says once in the log that it only
// answers UNIMPLEMENTED, so an operator does not wonder why nothing happens.
func NewServer(logger *slog.Logger) *Server {
	logger.Info("contract only: every RPC answers UNIMPLEMENTED until this component is implemented")
	return &Server{}
}
