package lb

import "time"

// DefaultAllInOne is the config `vigil all` serves: one public listener
// (HTTP/1.1 and h2c) in front of the REST gateway, with gRPC requests
// (content-type application/grpc) sent to the process's gRPC listener.
func DefaultAllInOne(listen, gatewayAddr, grpcAddr string) *Config {
	noRetries := 0
	gatewayRetries := 1
	cfg := &Config{
		// h2c on this port is only spoken by gRPC clients (browsers use
		// HTTP/1.1 or TLS), so it goes to the native gRPC engine.
		Listeners: []ListenerConfig{{Name: "public", Address: listen, H2C: true, NativeGRPC: true}},
		Routes: []RouteConfig{
			// gRPC first: streams (agents) may last for hours, so no total
			// time-out, and gRPC calls are POSTs that are only retried when
			// the connect itself failed.
			{Name: "grpc", Match: MatchConfig{GRPC: true}, Pool: "grpc", Retries: &noRetries},
			{
				Name: "gateway", Match: MatchConfig{PathPrefix: "/"}, Pool: "gateway",
				Retries: &gatewayRetries, TryTimeout: Duration(60 * time.Second),
				MaxBodyBytes: 64 << 20,
			},
		},
		Pools: []PoolConfig{
			{
				Name: "grpc", Upstreams: []string{grpcAddr}, Protocol: "h2c",
				HealthCheck: &HealthCheckConfig{Type: "grpc", Interval: Duration(5 * time.Second)},
			},
			{
				Name: "gateway", Upstreams: []string{gatewayAddr}, Protocol: "http1",
				HealthCheck: &HealthCheckConfig{Type: "http", Path: "/healthz", Interval: Duration(5 * time.Second)},
			},
		},
	}
	cfg.SetDefaults()
	return cfg
}
