package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// runIdle opens -n keep-alive connections to -addr, sends one GET on each
// and reads its answer, prints "open N", then holds them all idle until it
// is signalled: what bench/lb/idlemem.sh measures a proxy's memory with.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "the proxy")
	n := fs.Int("n", 5000, "connections")
	fs.Parse(args)
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range *n {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			return err
		}
		res, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		if _, err := io.Copy(io.Discard, res.Body); err != nil {
			return err
		}
		res.Body.Close()
	}
	fmt.Println("open", len(conns))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return nil
}
