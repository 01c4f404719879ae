package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/net/http2"
)

// runIdle opens -n keep-alive connections to -addr, sends one GET on each
// and reads its answer, prints "open N", then holds them all idle until it
// is signalled: what bench/lb/idlemem.sh measures a proxy's memory with.
// With -h2 the connections are HTTP/2 over TLS, as a browser's.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "the proxy")
	n := fs.Int("n", 5000, "connections")
	h2 := fs.Bool("h2", false, "HTTP/2 over TLS (any certificate) instead of HTTP/1.1")
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
		if *h2 {
			if err := h2Request(c, *addr); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			continue
		}
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

// h2Request makes c an HTTP/2 connection over TLS and makes one GET on it.
// The client connection stays open with c (its reader goroutine is the
// client's, not the proxy's).
func h2Request(c net.Conn, addr string) error {
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err := tc.Handshake(); err != nil {
		return err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return fmt.Errorf("ALPN chose %q, not h2", p)
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/", nil)
	res, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return err
}
