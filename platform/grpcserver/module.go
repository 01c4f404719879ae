package grpcserver

import (
	"go.uber.org/fx"

	"github.com/vigilhq/vigil/platform/rpc"
)

// Module provides the *Listener, the *Server and rpc.Peers (also as *Peers). It does not
// serve: Serve, placed after every component module, does, so components' own start
// hooks (an index load, a consumer start) run before the server reports SERVING.
var Module = fx.Options(
	fx.Provide(Listen, New),
	fx.Provide(fx.Annotate(NewPeers, fx.As(fx.Self()), fx.As(new(rpc.Peers)))),
)

// Serve starts the server when the app starts and drains it when the app stops. Put it
// at the root of the app, after the component modules: fx runs root invokes after the
// modules', so this start hook runs after theirs and its stop hook before theirs.
var Serve = fx.Invoke(func(lc fx.Lifecycle, s *Server) {
	lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
})
