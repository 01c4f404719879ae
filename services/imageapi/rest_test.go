package imageapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
)

// TestRESTBindings drives the generated grpc-gateway handlers (as the
// gateway mounts them) with JSON and base64 images.
func TestRESTBindings(t *testing.T) {
	_, _, conn := serve(t, nil)
	mux := runtime.NewServeMux()
	require.NoError(t, imageapiv1.RegisterImageApiServiceHandler(context.Background(), mux, conn))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	post := func(path string, body any) (int, []byte) {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, out
	}
	img := base64.StdEncoding.EncodeToString(readPhoto(t, "two_people.jpg"))

	code, body := post("/v1/image:process", map[string]any{
		"samples": []any{map[string]any{"image": img}},
		"units":   []string{"UNIT_FACE_DETECTOR", "UNIT_GENDER"},
	})
	require.Equal(t, http.StatusOK, code, string(body))
	var resp imageapiv1.ProcessResponse
	require.NoError(t, protojson.Unmarshal(body, &resp))
	require.Len(t, resp.GetSamples()[0].GetObjects(), 2)
	require.Equal(t, imageapiv1.Gender_GENDER_MALE, resp.GetSamples()[0].GetObjects()[0].GetGender().GetGender())

	code, body = post("/v1/image:detectBodies", map[string]any{"image": img})
	require.Equal(t, http.StatusOK, code, string(body))
	var bodies imageapiv1.DetectBodiesResponse
	require.NoError(t, protojson.Unmarshal(body, &bodies))
	require.Len(t, bodies.GetSample().GetObjects(), 2)

	code, body = post("/v1/image:estimateAge", map[string]any{"image": base64.StdEncoding.EncodeToString([]byte("not an image"))})
	require.Equal(t, http.StatusBadRequest, code, string(body))
	require.Contains(t, string(body), "image")
}
