// Package lb is Vigil's L7 load balancer: the one public port in front of
// the REST gateway and the gRPC services.
//
// It terminates HTTP/1.1, HTTP/2 over TLS (ALPN) and h2c (gRPC without
// TLS); routes by host, path prefix, gRPC content type and gRPC service;
// proxies unary and streaming gRPC with trailers, WebSocket upgrades, SSE
// (flushed as it comes) and uploads (streamed, never buffered whole);
// balances with round robin, least requests, power of two choices on EWMA
// latency, or consistent hashing on a header; checks upstreams actively
// (HTTP or grpc.health.v1) and passively (outlier ejection); retries
// idempotent requests within a retry budget; enforces per-try and total
// time-outs, a pending-request circuit breaker, per-client token-bucket
// rate limits and request size limits; logs each request with slog and
// exports Prometheus metrics per route and upstream; passes X-Request-Id
// (generated when missing) and W3C traceparent/tracestate on, and logs the
// trace id. Answers pass as the upstream sent them, but for hop-by-hop
// fields and an added Date and X-Request-Id: no Content-Type is guessed.
//
// Typical wiring (what `vigil lb --config lb.yaml` does):
//
//	cfg, err := lb.LoadConfig(path)            // or lb.DefaultAllInOne(":8080", "127.0.0.1:8081", "127.0.0.1:9090")
//	srv, err := lb.New(cfg, logger, registerer)
//	err = srv.Start(ctx)                        // listens, returns at once
//	go lb.WatchConfig(ctx, path, srv)          // SIGHUP or file change: Reload
//	...
//	err = srv.Shutdown(drainCtx)                // on SIGTERM: drain, then stop
//
// Files, one concern each: config.go (YAML, defaults, validation),
// allinone.go (the `vigil all` config), server.go (listeners, generations,
// reload, drain), h1server.go (the HTTP/1.x connection loop, over TLS
// too, which reuses a finished request's storage for the next one and
// hands whatever it does not parse itself to net/http, and HTTP/2 over
// TLS to the native HTTP/2 engine), reqclock.go (its requests' time-outs, on one timer per
// connection),
// h1server_parse.go (its strict request and upstream response head
// parsers), h1server_writer.go (its ResponseWriter, framing answers as
// net/http does), route.go (matching), proxy.go (one request: admission,
// attempts, relaying), upgrade.go (WebSocket), pool.go, upstream.go,
// picker.go (one struct per policy), health.go (active and passive),
// transport.go and h1transport.go (upstream connection pools),
// h1request.go (writing an upstream request head),
// grpcnative.go and sniff.go (the native HTTP/2 engine of native_grpc
// listeners' h2c connections, which also serves TLS listeners' HTTP/2:
// gRPC calls to h2c pools relayed frame by frame, the rest through
// ServeHTTP),
// h2relay.go, h2relay_conn.go, h2relay_call.go, h2relay_hpack.go,
// h2upstream.go and h2serve.go (that engine: its client side,
// connections and flow control, one relayed gRPC call, header-block
// decoding and encoding shortcuts, upstream connections, and HTTP
// requests served through ServeHTTP with a stream as ResponseWriter),
// conncheck_*.go (idle connection probe), idlepark_*.go (keep-alive
// connections idle idleParkAfter wait without a goroutine, in an epoll
// set, until their next request or idle_timeout; Linux), rawconn_*.go (a connection's
// non-blocking and waiting reads, its writes, and a write that then waits
// for the answer, through its RawConn with one closure each),
// answerpoll_*.go (the answer poller: upstream answers awaited in an
// epoll set of the proxy's own, harvested in arrival order, while Go's
// scheduling latency shows the process saturated; on Linux;
// VIGIL_LB_ANSWER_POLLER=off never uses it, =on always), rawio_*.go (read and write system
// calls without the scheduler's entersyscall), retry.go (retry budget), ratelimit.go,
// trust.go (trusted_proxies: whose X-Forwarded-For and -Proto to believe),
// proxyproto.go (the PROXY protocol header a listener with proxy_protocol
// reads, and whether a balancer in front terminated the client's TLS;
// sniff.go reads it, and splits native_grpc ports by protocol),
// metrics.go, accesslog.go, requestid.go, watch.go (SIGHUP and file
// polling), stamps_*.go (a latency breakdown of the HTTP/1.1 fast path
// from the kernel's receive stamps, built with -tags lbstamps only).
package lb
