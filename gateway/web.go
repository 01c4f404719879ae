package gateway

import (
	"io/fs"
	"net/http"
)

// Web holds the built web apps (platform UI and admin UI) to serve at "/". Provide one
// through fx to replace the built-in index page.
type Web struct {
	FS fs.FS
}

// indexPage is served until the web apps exist: it says what this server offers.
const indexPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Vigil</title></head>
<body>
<h1>Vigil</h1>
<p>The web apps are not part of this build yet. The API is served here:</p>
<ul>
<li><a href="/openapi.json">/openapi.json</a>: the REST API (OpenAPI 2.0)</li>
<li><a href="/healthz">/healthz</a>: health</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul>
<p>gRPC clients: see the contracts under proto/vigil/ in the source.</p>
</body>
</html>
`

func web(w *Web) http.Handler {
	if w != nil && w.FS != nil {
		return http.FileServerFS(w.FS)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = rw.Write([]byte(indexPage))
	})
}
