package objstore

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/stretchr/testify/require"
)

func TestSignatureTimeLimits(t *testing.T) {
	c := credentials{accessKey: "AK", secretKey: "SK", region: "us-east-1"}
	code := func(err error) string {
		var ae *authError
		if errors.As(err, &ae) {
			return ae.code
		}
		return ""
	}

	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9000/vigil/a.jpg", nil)
	pre := signer.PreSignV4(*req, "AK", "SK", "", "us-east-1", 60)
	pre.Host = "127.0.0.1:9000"
	_, err := c.verify(pre, time.Now())
	require.NoError(t, err)
	_, err = c.verify(pre, time.Now().Add(2*time.Minute))
	require.Equal(t, "AccessDenied", code(err), "expired presigned URL: %v", err)

	req, _ = http.NewRequest(http.MethodGet, "http://127.0.0.1:9000/vigil/a.jpg", nil)
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	signed := signer.SignV4(*req, "AK", "SK", "", "us-east-1")
	signed.Host = "127.0.0.1:9000"
	_, err = c.verify(signed, time.Now())
	require.NoError(t, err)
	_, err = c.verify(signed, time.Now().Add(time.Hour))
	require.Equal(t, "RequestTimeTooSkewed", code(err))

	// Another host than the one signed.
	signed.Host = "evil.example:9000"
	_, err = c.verify(signed, time.Now())
	require.Equal(t, "SignatureDoesNotMatch", code(err))
}
