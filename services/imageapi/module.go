package imageapi

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"google.golang.org/grpc"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/ml/vision"
	"github.com/vigilhq/vigil/platform/config"
	"github.com/vigilhq/vigil/platform/licensecheck"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Module is the Image API component. It needs the platform's *config.Config,
// *slog.Logger, prometheus.Registerer and rpc.Peers: units are checked against the
// license through the licensing service's client (platform/licensecheck), failing
// closed when licensing cannot be reached. The models load when
// the module is constructed, so the first request is as fast as any other;
// the ONNX sessions are released on stop.
var Module = fx.Module("imageapi",
	log.ForService("imageapi"),
	fx.Provide(
		fx.Private,
		func(c *config.Config) (Config, error) { return config.SectionOf[Config](c, "imageapi") },
		newEngine,
		newServerFromParams,
		newUnitChecker,
	),
	fx.Provide(rpc.AsService(newService)),
)

func newEngine(lc fx.Lifecycle, cfg Config, l *slog.Logger) (*vision.Engine, error) {
	e, err := vision.NewEngine(cfg.Vision(), l)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{OnStop: func(context.Context) error { return e.Close() }})
	return e, nil
}

// ServerParams are the Server's dependencies in the fx graph.
type ServerParams struct {
	fx.In
	Config     Config
	Engine     *vision.Engine
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Units refuses units the license does not enable.
	Units UnitChecker
}

func newServerFromParams(p ServerParams) (*Server, error) {
	return NewServer(p.Config, p.Engine, p.Units, p.Registerer, p.Log)
}

func newService(s *Server) rpc.Service {
	return rpc.Service{
		Name:     imageapiv1.ImageApiService_ServiceDesc.ServiceName,
		Register: func(r grpc.ServiceRegistrar) { imageapiv1.RegisterImageApiServiceServer(r, s) },
		Gateway:  imageapiv1.RegisterImageApiServiceHandler,
		HTTP:     HTTPRoutes,
	}
}

// newUnitChecker asks the licensing component, wherever it runs, through its client.
func newUnitChecker(peers rpc.Peers) (UnitChecker, error) {
	conn, err := peers.Conn("licensing")
	if err != nil {
		return nil, err
	}
	return licensecheck.NewChecker(conn), nil
}
