// Package agentsync is the agent-sync component: one bidirectional Connect stream per edge
// agent for registration, heartbeats, profile sync by cursor and activity uploads into
// Kafka (vigil.agentsync.v1).
//
// Its logic belongs to a later issue. Until then the component starts, registers its
// service on the process's gRPC server (so health reports it SERVING), serves its REST
// bindings through the gateway, and answers every RPC with UNIMPLEMENTED: never fake data.
package agentsync

import (
	"go.uber.org/fx"
	"google.golang.org/grpc"

	agentsyncv1 "github.com/vigilhq/vigil/gen/go/vigil/agentsync/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ServiceName is the full proto name of the component's service, as health reports it.
const ServiceName = "vigil.agentsync.v1.AgentSyncService"

// Module is the component's fx module: it contributes its rpc.Service to the process.
var Module = fx.Module("agentsync",
	log.ForService("agentsync"),
	fx.Provide(fx.Private, NewServer),
	fx.Provide(rpc.AsService(NewService)),
)

// NewService is the rpc.Service registering s on the process's server.
func NewService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     ServiceName,
		Register: func(r grpc.ServiceRegistrar) { agentsyncv1.RegisterAgentSyncServiceServer(r, s) },
	}
}
