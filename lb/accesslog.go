package lb

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// logAccess writes one structured line per request.
func (s *Server) logAccess(r *http.Request, reqID string, ex *exchange, d time.Duration) {
	level := slog.LevelInfo
	if ex.status >= 500 {
		level = slog.LevelWarn
	}
	routeName := ""
	if ex.route != nil {
		routeName = ex.route.name
	}
	attrs := []slog.Attr{
		slog.String("request_id", reqID),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.String("remote", r.RemoteAddr),
		slog.String("route", routeName),
		slog.String("upstream", ex.upstream),
		slog.Int("attempts", ex.attempts),
		slog.Int("status", ex.status),
		slog.Int64("bytes", ex.bytes),
		slog.Duration("duration", d),
	}
	if ex.err != nil {
		attrs = append(attrs, slog.String("err", ex.err.Error()))
	}
	s.accessLog.LogAttrs(context.Background(), level, "request", attrs...)
}
