package imageapi

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
)

func multipartBody(t *testing.T, files map[string][]byte, fields map[string]string) (*bytes.Buffer, string) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for name, b := range files {
		part, err := w.CreateFormFile("image", name)
		require.NoError(t, err)
		_, err = part.Write(b)
		require.NoError(t, err)
	}
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	require.NoError(t, w.Close())
	return &body, w.FormDataContentType()
}

func TestMultipartProcess(t *testing.T) {
	_, _, conn := serve(t, nil)
	srv := httptest.NewServer(HTTPRoutes(conn)[0].Handler)
	t.Cleanup(srv.Close)

	post := func(t *testing.T, auth string, files map[string][]byte, fields map[string]string) (int, []byte) {
		body, ct := multipartBody(t, files, fields)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/image:process", body)
		require.NoError(t, err)
		req.Header.Set("Content-Type", ct)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}

	code, b := post(t, "Bearer "+token, map[string][]byte{"two.jpg": readPhoto(t, "two_people.jpg")}, map[string]string{"units": "face_detector, UNIT_AGE"})
	require.Equal(t, http.StatusOK, code, string(b))
	var resp imageapiv1.ProcessResponse
	require.NoError(t, protojson.Unmarshal(b, &resp))
	require.Len(t, resp.GetSamples(), 1)
	require.Len(t, resp.GetSamples()[0].GetObjects(), 2)
	for _, o := range resp.GetSamples()[0].GetObjects() {
		require.Greater(t, o.GetAge().GetYears(), float32(30))
	}

	cases := []struct {
		name   string
		auth   string
		files  map[string][]byte
		fields map[string]string
		want   int
	}{
		{"corrupt image", "Bearer " + token, map[string][]byte{"x.jpg": []byte("nope")}, map[string]string{"units": "face_detector"}, http.StatusBadRequest},
		{"no image field", "Bearer " + token, nil, map[string]string{"units": "face_detector"}, http.StatusBadRequest},
		{"no units", "Bearer " + token, map[string][]byte{"a.jpg": readPhoto(t, "obama_small.jpg")}, nil, http.StatusBadRequest},
		{"unknown unit", "Bearer " + token, map[string][]byte{"a.jpg": readPhoto(t, "obama_small.jpg")}, map[string]string{"units": "telepathy"}, http.StatusBadRequest},
		{"bad threshold", "Bearer " + token, map[string][]byte{"a.jpg": readPhoto(t, "obama_small.jpg")}, map[string]string{"units": "age", "score_threshold": "high"}, http.StatusBadRequest},
		{"no credentials", "", map[string][]byte{"a.jpg": readPhoto(t, "obama_small.jpg")}, map[string]string{"units": "age"}, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := post(t, c.auth, c.files, c.fields)
			require.Equal(t, c.want, code, string(b))
			require.Contains(t, string(b), `"code"`)
		})
	}
}
