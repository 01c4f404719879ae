package log

import (
	"context"

	"github.com/google/uuid"
)

// RequestIDHeader is the HTTP header and gRPC metadata key carrying a request id, read
// from the caller and echoed back, generated when missing.
const RequestIDHeader = "x-request-id"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a fresh random request id.
func NewRequestID() string { return uuid.NewString() }

// maxRequestIDLen bounds a caller-chosen id so a hostile header cannot bloat every log line.
const maxRequestIDLen = 128

// SanitizeRequestID returns id if it is a reasonable caller-chosen id (printable ASCII,
// bounded length), else a fresh one.
func SanitizeRequestID(id string) string {
	if id == "" || len(id) > maxRequestIDLen {
		return NewRequestID()
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return NewRequestID()
		}
	}
	return id
}
