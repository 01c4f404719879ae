package backend_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// restCall sends a JSON request through the gateway and returns the status and body.
func (e *env) restCall(method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.httpBase+path, strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestREST(t *testing.T) {
	e := newEnv(t)

	code, out := e.restCall(http.MethodPost, "/v1/auth:login", "", `{"email":"`+e.adminEmail+`","password":"`+e.adminPass+`"}`)
	require.Equal(t, http.StatusOK, code, out)
	token := out["sessionToken"].(string)

	code, out = e.restCall(http.MethodPost, "/v1/persons", token, `{"name":"Ada","externalId":"ada-1","customFields":{"dept":"R&D","badge":7}}`)
	require.Equal(t, http.StatusOK, code, out)
	id := out["person"].(map[string]any)["id"].(string)

	code, out = e.restCall(http.MethodGet, "/v1/persons?customFieldEquals[dept]=R%26D", token, "")
	require.Equal(t, http.StatusOK, code, out)
	require.Len(t, out["persons"], 1)

	code, out = e.restCall(http.MethodPatch, "/v1/persons/"+id+"?updateMask=name", token, `{"name":"Ada Lovelace","externalId":"ignored"}`)
	require.Equal(t, http.StatusOK, code, out)
	p := out["person"].(map[string]any)
	require.Equal(t, "Ada Lovelace", p["name"])
	require.Equal(t, "ada-1", p["externalId"], "only the masked field changed")

	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"wrong JSON type", http.MethodPost, "/v1/persons", token, `{"name":123}`, http.StatusBadRequest},
		{"not JSON", http.MethodPost, "/v1/persons", token, `{"name":`, http.StatusBadRequest},
		{"invalid UTF-8", http.MethodPost, "/v1/persons", token, "{\"name\":\"a\xff\xfeb\"}", http.StatusBadRequest},
		{"duplicate external id", http.MethodPost, "/v1/persons", token, `{"name":"Other","externalId":"ada-1"}`, http.StatusConflict},
		{"overlong name", http.MethodPost, "/v1/persons", token, `{"name":"` + strings.Repeat("x", 201) + `"}`, http.StatusBadRequest},
		{"no credentials", http.MethodGet, "/v1/persons", "", "", http.StatusUnauthorized},
		{"unknown person", http.MethodGet, "/v1/persons/0190a000-0000-7000-8000-000000000000", token, "", http.StatusNotFound},
		{"system method as workspace admin of no superuser", http.MethodGet, "/v1/workspaces", "vgk_not-a-key", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.restCall(tc.method, tc.path, tc.token, tc.body)
			require.Equal(t, tc.want, code, out)
		})
	}
	require.Equal(t, 1, e.count("persons"), "no bad request stored anything")

	// Integrators' API keys work over REST in either header.
	code, out = e.restCall(http.MethodPost, "/v1/api-keys", token, `{"name":"rest","role":"ROLE_VIEWER"}`)
	require.Equal(t, http.StatusOK, code, out)
	req, err := http.NewRequest(http.MethodGet, e.httpBase+"/v1/persons", nil)
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", out["secret"].(string))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	code, out = e.restCall(http.MethodDelete, "/v1/persons/"+id, token, "")
	require.Equal(t, http.StatusOK, code, out)
	require.Zero(t, e.count("persons"))
}
