package gateway

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is a copy of gen/openapi/vigil.swagger.json, the merged document `make gen`
// writes; `make gen` copies it here (go:embed cannot reach outside the package), and
// TestOpenAPICopyIsCurrent fails when the copy is stale.
//
//go:embed openapi/vigil.swagger.json
var openAPIDoc []byte

// OpenAPIDocument returns the served OpenAPI document.
func OpenAPIDocument() []byte { return openAPIDoc }

func openAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDoc)
	})
}
