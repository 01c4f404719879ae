package jobs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	// HeaderSignature is "sha256=<hex HMAC-SHA256 of `<timestamp>.<body>` keyed by the secret>".
	HeaderSignature = "X-Vigil-Signature"
	// HeaderTimestamp is the Unix time in seconds at which the request was signed; it is
	// part of the signed text, so a receiver can refuse replays of old requests.
	HeaderTimestamp = "X-Vigil-Timestamp"
	// HeaderDelivery identifies the delivery (the job id); equal across retries, so a
	// receiver can drop duplicates.
	HeaderDelivery = "X-Vigil-Delivery"
)

// Sign returns the X-Vigil-Signature value for body sent at timestamp (Unix seconds).
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the tolerance")
)

// Verify checks a received webhook the way a receiver should: the signature over the
// timestamp header and the raw body, in constant time, and a timestamp within tolerance
// of now (0 skips the time check).
func Verify(secret, signatureHeader, timestampHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestampHeader), 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signatureHeader))) {
		return ErrBadSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
			return ErrStale
		}
	}
	return nil
}
