// Package eventservice is the event-service component: it consumes activity updates from
// Kafka, stores activities and images, gets templates from the extractor and matches from
// the matcher, and emits events and notifications (vigil.eventservice.v1).
//
// Its logic belongs to a later issue. Until then the component starts, registers its
// service on the process's gRPC server (so health reports it SERVING), serves its REST
// bindings through the gateway, and answers every RPC with UNIMPLEMENTED: never fake data.
package eventservice

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	eventservicev1 "github.com/vigilhq/vigil/gen/go/vigil/eventservice/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ServiceName is the full proto name of the component's service, as health reports it.
const ServiceName = "vigil.eventservice.v1.EventService"

// Module is the component's fx module: it contributes its rpc.Service to the process.
var Module = fx.Module("eventservice",
	log.ForService("eventservice"),
	fx.Provide(fx.Private, NewServer),
	fx.Provide(rpc.AsService(NewService)),
)

// NewService is the rpc.Service registering s on the process's server.
func NewService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     ServiceName,
		Register: func(r grpc.ServiceRegistrar) { eventservicev1.RegisterEventServiceServer(r, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return eventservicev1.RegisterEventServiceHandler(ctx, mux, conn)
		},
	}
}
