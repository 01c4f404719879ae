package objstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/platform/objstore"
)

func open(t *testing.T, dir string) *objstore.Store {
	t.Helper()
	s, err := objstore.Open(context.Background(), objstore.Options{Region: "us-east-1", Bucket: "vigil", DataDir: dir}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestPutGetListDeletePresign(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	require.NotNil(t, s.Embedded())
	require.True(t, strings.HasPrefix(s.Endpoint, "127.0.0.1:"))

	objects := map[string][]byte{
		"frames/cam-1/a.jpg":      random(t, 1000),
		"frames/cam-1/b.jpg":      random(t, 10<<20), // over the in-memory spool limit
		"crops/x y+z/ünïcode.jpg": random(t, 300),    // keys needing URI encoding
		"empty":                   {},
	}
	for k, v := range objects {
		require.NoError(t, s.Put(ctx, k, bytes.NewReader(v), int64(len(v)), "image/jpeg"), k)
	}
	// Unknown size: minio-go streams a multipart upload.
	stream := random(t, 3<<20)
	require.NoError(t, s.Put(ctx, "stream/unknown-size", bytes.NewReader(stream), -1, "application/octet-stream"))
	objects["stream/unknown-size"] = stream

	for k, want := range objects {
		rc, info, err := s.Get(ctx, k)
		require.NoError(t, err, k)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.True(t, bytes.Equal(want, got), "object %s round-trips", k)
		require.Equal(t, int64(len(want)), info.Size)
	}

	keys, err := s.List(ctx, "frames/")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"frames/cam-1/a.jpg", "frames/cam-1/b.jpg"}, keys)

	u, err := s.PresignGet(ctx, "frames/cam-1/a.jpg", time.Minute)
	require.NoError(t, err)
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, objects["frames/cam-1/a.jpg"], body)

	// A presigned URL for one key does not open another.
	tampered := strings.Replace(u.String(), "a.jpg", "b.jpg", 1)
	resp, err = http.Get(tampered)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	require.NoError(t, s.Delete(ctx, "frames/cam-1/a.jpg"))
	_, _, err = s.Get(ctx, "frames/cam-1/a.jpg")
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.NoError(t, s.Delete(ctx, "frames/cam-1/a.jpg"), "deleting a missing object is fine")
}

func TestRefusesUnsignedAndBadlySigned(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	require.NoError(t, s.Put(ctx, "secret.jpg", strings.NewReader("face"), 4, "image/jpeg"))
	e := s.Embedded()
	base := "http://" + e.Endpoint + "/vigil/secret.jpg"

	// Unsigned.
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(method, base, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, method)
		require.Contains(t, string(body), "<Code>AccessDenied</Code>")
	}

	// Wrong secret, wrong access key: minio-go gets 403 with the S3 code.
	tests := []struct{ access, secret, code string }{
		{e.AccessKey, "wrong-secret", "SignatureDoesNotMatch"},
		{"wrong-access", e.SecretKey, "InvalidAccessKeyId"},
	}
	for _, tt := range tests {
		c, err := minio.New(e.Endpoint, &minio.Options{Creds: miniocreds.NewStaticV4(tt.access, tt.secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
		require.NoError(t, err)
		_, err = c.StatObject(ctx, "vigil", "secret.jpg", minio.StatObjectOptions{})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, minio.ToErrorResponse(err).StatusCode)
		_, err = c.PutObject(ctx, "vigil", "planted.jpg", strings.NewReader("evil"), 4, minio.PutObjectOptions{})
		require.Error(t, err)
		require.Equal(t, tt.code, minio.ToErrorResponse(err).Code)
	}
	_, _, err := s.Get(ctx, "planted.jpg")
	require.ErrorIs(t, err, objstore.ErrNotFound, "nothing was written by refused requests")

	// The object is untouched.
	rc, _, err := s.Get(ctx, "secret.jpg")
	require.NoError(t, err)
	got, _ := io.ReadAll(rc)
	rc.Close()
	require.Equal(t, "face", string(got))
}

// TestRefusesTamperedBodies signs one body and sends another: with a signed payload hash,
// and inside a signed-chunk stream.
func TestRefusesTamperedBodies(t *testing.T) {
	s := open(t, t.TempDir())
	e := s.Embedded()
	url := "http://" + e.Endpoint + "/vigil/tampered.jpg"

	// Signed hash of one body, another body sent.
	req, _ := http.NewRequest(http.MethodPut, url, nil)
	h := sha256.Sum256([]byte("original"))
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(h[:]))
	req = signer.SignV4(*req, e.AccessKey, e.SecretKey, "", "us-east-1")
	req.Body = io.NopCloser(strings.NewReader("replaced"))
	req.ContentLength = 8
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "XAmzContentSHA256Mismatch")

	// Signed-chunk stream with one payload byte flipped after signing.
	data := random(t, 100<<10)
	req, _ = http.NewRequest(http.MethodPut, url, bytes.NewReader(data))
	req = signer.StreamingSignV4(req, e.AccessKey, e.SecretKey, "", "us-east-1", int64(len(data)), time.Now().UTC(), sha256Hasher{sha256.New()})
	encoded, err := io.ReadAll(req.Body)
	require.NoError(t, err)
	i := bytes.Index(encoded, data[:32])
	require.Positive(t, i)
	encoded[i+10] ^= 0xff
	req.Body = io.NopCloser(bytes.NewReader(encoded))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, string(body), "SignatureDoesNotMatch")

	_, _, err = s.Get(context.Background(), "tampered.jpg")
	require.ErrorIs(t, err, objstore.ErrNotFound)
}

func TestEmbeddedStoreKeepsObjectsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	require.NoError(t, s.Put(context.Background(), "kept.jpg", strings.NewReader("kept"), 4, "image/jpeg"))

	_, err := objstore.Open(context.Background(), objstore.Options{Region: "us-east-1", Bucket: "vigil", DataDir: dir}, slog.New(slog.DiscardHandler))
	require.Error(t, err, "the folder is held by the first store until it closes")
	require.NoError(t, s.Close(context.Background()))

	s2 := open(t, dir)
	rc, _, err := s2.Get(context.Background(), "kept.jpg")
	require.NoError(t, err)
	got, _ := io.ReadAll(rc)
	rc.Close()
	require.Equal(t, "kept", string(got))
}

// sha256Hasher adapts sha256 to the hasher minio-go's streaming signer takes.
type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}
