package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/vigilhq/vigil/platform/log"
)

// withRequestID gives every request an id (the caller's X-Request-Id if sane, else a
// fresh one), echoes it in the response and passes it on to gRPC and the logs.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := log.SanitizeRequestID(r.Header.Get(log.RequestIDHeader))
		r.Header.Set(log.RequestIDHeader, id)
		w.Header().Set(log.RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(log.WithRequestID(r.Context(), id)))
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flush, hijack for WebSockets).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// accessLog logs one line per request (health checks and metrics scrapes at debug).
func accessLog(l *slog.Logger, enabled bool, next http.Handler) http.Handler {
	if !enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug
		}
		l.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
			"status", rec.code(), "duration_ms", float64(time.Since(start).Microseconds())/1000,
			"remote", r.RemoteAddr)
	})
}
