package gateway

import (
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc"

	"github.com/vigilhq/vigil/platform/rpc"
)

// mountHTTPRoutes mounts every service's hand-written routes. Routes sharing a pattern
// are told apart by content type; a request none of them accepts falls through to the
// generated handlers (fallback).
func mountHTTPRoutes(mux *http.ServeMux, fallback http.Handler, conn *grpc.ClientConn, services []rpc.Service) error {
	byPattern := map[string][]rpc.HTTPRoute{}
	var order []string
	for _, svc := range services {
		if svc.HTTP == nil {
			continue
		}
		for _, r := range svc.HTTP(conn) {
			if r.Pattern == "" || r.Handler == nil {
				return fmt.Errorf("gateway: %s: HTTP route needs Pattern and Handler", svc.Name)
			}
			if _, ok := byPattern[r.Pattern]; !ok {
				order = append(order, r.Pattern)
			}
			byPattern[r.Pattern] = append(byPattern[r.Pattern], r)
		}
	}
	for _, pattern := range order {
		d := contentTypeDispatch{routes: byPattern[pattern], fallback: fallback}
		if err := register(mux, pattern, d); err != nil {
			return err
		}
	}
	return nil
}

// register is mux.Handle, returning the panic of a bad or conflicting pattern as an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("gateway: route %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

type contentTypeDispatch struct {
	routes   []rpc.HTTPRoute
	fallback http.Handler
}

func (d contentTypeDispatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	for _, route := range d.routes {
		if route.ContentType == "" || strings.HasPrefix(ct, strings.ToLower(route.ContentType)) {
			route.Handler.ServeHTTP(w, r)
			return
		}
	}
	d.fallback.ServeHTTP(w, r)
}
