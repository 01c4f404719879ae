package extractor

import (
	"log/slog"

	extractorv1 "github.com/vigilhq/vigil/gen/go/vigil/extractor/v1"
)

// Server implements extractorv1.ExtractorServiceServer. Every RPC is still the generated
// UnimplementedExtractorServiceServer's: it answers UNIMPLEMENTED until the component's own issue
// fills it in.
type Server struct {
	extractorv1.UnimplementedExtractorServiceServer
}

// NewServer returns the component's server, and says once in the log that it only
// answers UNIMPLEMENTED, so an operator does not wonder why nothing happens.
func NewServer(logger *slog.Logger) *Server {
	logger.Info("contract only: every RPC answers UNIMPLEMENTED until this component is implemented")
	return &Server{}
}
