package verifymatcher

import (
	"go.uber.org/fx"
	"google.golang.org/grpc"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	verifymatcherv1 "github.com/vigilhq/vigil/gen/go/vigil/verifymatcher/v1"
	"github.com/vigilhq/vigil/platform/log"
	"github.com/vigilhq/vigil/platform/rpc"
)

// Module is the verify-matcher component. It needs the platform's rpc.Peers (to
// reach the Image API, peer name "imageapi") and holds no state of its own.
var Module = fx.Module("verifymatcher",
	log.ForService("verifymatcher"),
	fx.Provide(
		fx.Private,
		NewVerifier,
		func(p rpc.Peers) (*Extractor, error) {
			conn, err := p.Conn("imageapi")
			if err != nil {
				return nil, err
			}
			return NewExtractor(imageapiv1.NewImageApiServiceClient(conn)), nil
		},
		NewServer,
	),
	fx.Provide(rpc.AsService(func(s *Server) rpc.Service {
		return rpc.Service{
			Name:     verifymatcherv1.VerifyMatcherService_ServiceDesc.ServiceName,
			Register: func(r grpc.ServiceRegistrar) { verifymatcherv1.RegisterVerifyMatcherServiceServer(r, s) },
		}
	})),
)
