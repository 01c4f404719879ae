package activitymatcher

import (
	"log/slog"

	activitymatcherv1 "github.com/vigilhq/vigil/gen/go/vigil/activitymatcher/v1"
)

// Server implements activitymatcherv1.ActivityMatcherServiceServer. Every RPC is still the generated
// UnimplementedActivityMatcherServiceServer's: it answers UNIMPLEMENTED until the component's own issue
// fills it in.
type Server struct {
	activitymatcherv1.UnimplementedActivityMatcherServiceServer
}

// NewServer returns the component's server, and says once in the log that it only
// answers UNIMPLEMENTED, so an operator does not wonder why nothing happens.
func NewServer(logger *slog.Logger) *Server {
	logger.Info("contract only: every RPC answers UNIMPLEMENTED until this component is implemented")
	return &Server{}
}
