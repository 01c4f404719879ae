package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// runConf prints one of run.go's configs (vigil-lb, haproxy, nginx, or
// the nginx origin) for the given addresses, so that the shell scripts
// (bound.sh, idlemem.sh, c1ab.sh) run the proxies exactly as run.go does.
// Both upstream pools may name the same server: a script with one
// upstream sets -up-http and -up-origin alike.
func runConf(args []string) error {
	fs := flag.NewFlagSet("conf", flag.ExitOnError)
	proxy := fs.String("proxy", "vigil-lb", "vigil-lb, haproxy, nginx or origin")
	httpAddr := fs.String("http", "127.0.0.1:18090", "the proxy's HTTP/1.1 listener (origin: its own)")
	grpcAddr := fs.String("grpc", "127.0.0.1:18092", "the proxy's gRPC listener")
	upHTTP := fs.String("up-http", "127.0.0.1:18091", "upstream for /")
	upGRPC := fs.String("up-grpc", "127.0.0.1:18093", "gRPC upstream")
	upOrigin := fs.String("up-origin", "", "upstream for /origin/ (default: -up-http)")
	dir := fs.String("dir", os.TempDir(), "nginx's pid and temporary files (one per nginx)")
	headers := fs.String("headers", "same", `"same" or "defaults", as for run`)
	fs.Parse(args)
	if *upOrigin == "" {
		*upOrigin = *upHTTP
	}
	vals := map[string]string{"HTTP": *httpAddr, "GRPC": *grpcAddr, "UpHTTP": *upHTTP, "UpGRPC": *upGRPC, "UpOrigin": *upOrigin, "Dir": *dir}
	switch *headers {
	case "same":
		vals["Same"] = "1"
	case "defaults":
	default:
		return fmt.Errorf(`-headers: %q is neither "same" nor "defaults"`, *headers)
	}
	tmpl, ok := map[string]string{"vigil-lb": vigilConf, "haproxy": haproxyConf, "nginx": nginxConf, "origin": originConf}[*proxy]
	if !ok {
		return fmt.Errorf("-proxy: unknown %q", *proxy)
	}
	if *proxy == "origin" {
		vals["UpOrigin"] = *httpAddr
	}
	out := filepath.Join(*dir, *proxy+".conf")
	if err := writeTemplate(out, tmpl, vals); err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
