// Package gen holds the code and documents generated from proto/ (see buf.gen.yaml); this
// file alone is hand-written: it embeds the merged OpenAPI document so the gateway serves
// exactly what `make gen` produced, with no copy to keep in step.
package gen

import _ "embed"

// OpenAPI is the merged OpenAPI 2.0 document of every service's REST bindings.
//
//go:embed openapi/vigil.swagger.json
var OpenAPI []byte
