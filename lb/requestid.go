package lb

import (
	"crypto/rand"
	"encoding/hex"
)

// newRequestID returns 16 random bytes as 32 hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newTraceparent starts a W3C trace context for a request that arrived
// without one, so the upstream's spans and our access log share a trace id.
// The sampled flag is left off: sampling is the tracer's decision.
func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	var out [55]byte
	copy(out[:], "00-")
	hex.Encode(out[3:35], b[:16])
	out[35] = '-'
	hex.Encode(out[36:52], b[16:])
	copy(out[52:], "-00")
	return string(out[:])
}
