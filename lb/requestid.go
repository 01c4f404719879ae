package lb

import (
	"encoding/hex"
	"math/rand/v2"
)

// newRequestID returns 16 random bytes as 32 hex digits. The bytes come
// from math/rand/v2's global ChaCha8 generator, seeded by the runtime
// from the OS: unpredictable enough for a correlation id, and about 5x
// cheaper than crypto/rand per request.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	var out [32]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}
