package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthz answers from the gRPC health server: 200 when the process (or, with
// ?service=<full proto name>, that service) is SERVING, 503 otherwise.
func healthz(conn *grpc.ClientConn) http.Handler {
	client := healthpb.NewHealthClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		defer cancel()
		service := r.URL.Query().Get("service")
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		st := healthpb.HealthCheckResponse_UNKNOWN.String()
		if err == nil {
			st = resp.GetStatus().String()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"status": st})
	})
}

const healthTimeout = 2 * time.Second
