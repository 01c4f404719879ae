// Package activitymatcher is the activity-search component: activities by time, place,
// attributes and appearance, and per-person timelines (vigil.activitymatcher.v1).
//
// Its logic belongs to a later issue. Until then the component starts, registers its
// service on the process's gRPC server (so health reports it SERVING), serves its REST
// bindings through the gateway, and answers every RPC with UNIMPLEMENTED: never fake data.
package activitymatcher

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	activitymatcherv1 "github.com/vigilhq/vigil/gen/go/vigil/activitymatcher/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// ServiceName is the full proto name of the component's service, as health reports it.
const ServiceName = "vigil.activitymatcher.v1.ActivityMatcherService"

// Module is the component's fx module: it contributes its rpc.Service to the process.
var Module = fx.Module("activitymatcher",
	log.ForService("activitymatcher"),
	fx.Provide(fx.Private, NewServer),
	fx.Provide(rpc.AsService(NewService)),
)

// NewService is the rpc.Service registering s on the process's server.
func NewService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     ServiceName,
		Register: func(r grpc.ServiceRegistrar) { activitymatcherv1.RegisterActivityMatcherServiceServer(r, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return activitymatcherv1.RegisterActivityMatcherServiceHandler(ctx, mux, conn)
		},
	}
}
