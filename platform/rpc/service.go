// Package rpc is the contract between components and the process that hosts them: a
// component contributes Services to an fx value group; the platform registers them all on
// the process's one gRPC server, reports health per service, and mounts their REST
// bindings on the gateway. Components reach each other only through Peers.
package rpc

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/fx"
	"google.golang.org/grpc"
)

// Service is one gRPC service a component contributes to its process.
type Service struct {
	// Name is the full proto service name ("vigil.matcher.v1.MatcherService"), under
	// which the health server reports it.
	Name string
	// Register registers the implementation on the process's gRPC server.
	Register func(grpc.ServiceRegistrar)
	// Gateway registers the service's generated REST handlers (RegisterXxxHandler) on the
	// gateway mux, calling through conn. Nil for services without HTTP bindings.
	Gateway func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error
	// HTTP returns plain HTTP routes the gateway mounts in front of the generated ones
	// (e.g. multipart uploads), calling the service through conn. Nil for none.
	HTTP func(conn *grpc.ClientConn) []HTTPRoute
}

// HTTPRoute is a hand-written HTTP handler mounted by the gateway. A request goes to
// Handler when it matches Pattern (net/http ServeMux syntax, e.g. "POST /v1/image:process")
// and, if ContentType is set, its Content-Type starts with it; otherwise it falls through
// to the generated grpc-gateway routes.
type HTTPRoute struct {
	Pattern     string
	ContentType string
	Handler     http.Handler
}

// GroupTag is the fx value-group tag under which Services are collected.
const GroupTag = `group:"rpc_services"`

// AsService annotates a constructor returning a Service so fx adds its result to the
// process's service group: fx.Provide(rpc.AsService(newMatcherService)).
func AsService(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(GroupTag))
}

// AsServices is AsService for a constructor returning []Service, for a component that
// contributes several services (each still registered and health-reported on its own).
func AsServices(constructor any) any {
	return fx.Annotate(constructor, fx.ResultTags(`group:"rpc_services,flatten"`))
}

// Peers gives a client connection to any component by name ("matcher", "imageapi", ...).
// In `vigil all` every name resolves to the process's own listener; split deployments
// configure an address per component. Connections carry the internal service credentials.
type Peers interface {
	Conn(component string) (grpc.ClientConnInterface, error)
}
