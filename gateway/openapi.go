package gateway

import (
	"net/http"

	"github.com/vigilhq/vigil/gen"
)

// OpenAPIDocument returns the served OpenAPI document: the merged one `make gen` writes.
func OpenAPIDocument() []byte { return gen.OpenAPI }

func openAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(gen.OpenAPI)
	})
}
