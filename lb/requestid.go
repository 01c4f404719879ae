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
