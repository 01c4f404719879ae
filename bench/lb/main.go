// Command lbbench compares `vigil lb` with HAProxy and nginx in one run:
// same upstreams, same load generators (wrk for HTTP/1.1 keep-alive, a Go
// gRPC generator for unary gRPC), same pinned cores. See README.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: lbbench run|upstream|lb|grpcload|idle|conf|wrkheaders [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runBench(os.Args[2:])
	case "upstream":
		err = runUpstream(os.Args[2:])
	case "lb":
		err = runLB(os.Args[2:])
	case "grpcload":
		err = runGRPCLoad(os.Args[2:])
	case "idle":
		err = runIdle(os.Args[2:])
	case "conf":
		err = runConf(os.Args[2:])
	case "wrkheaders":
		err = runWrkHeaders(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbbench:", err)
		os.Exit(1)
	}
}
