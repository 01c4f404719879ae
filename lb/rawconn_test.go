//go:build unix

package lb

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// A write far larger than the socket buffers makes rawWrite meet EAGAIN
// many times; every byte must still arrive, in order, and Write must
// report them all.
func TestConnWriterLargeWriteToSlowReader(t *testing.T) {
	client, server := tcpPair(t)
	w := newConnWriter(client)
	_, isRaw := w.(*connWriter)
	require.True(t, isRaw, "a TCP connection gets the raw writer")

	payload := make([]byte, 16<<20)
	rand.Read(payload)
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 64<<10)
		for {
			n, err := server.Read(chunk)
			buf.Write(chunk[:n])
			if buf.Len() < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first: the writer must wait
			}
			if err != nil {
				got <- buf.Bytes()
				return
			}
		}
	}()
	n, err := w.Write(payload)
	require.NoError(t, err)
	require.Equal(t, len(payload), n)
	client.(*net.TCPConn).CloseWrite()
	require.True(t, bytes.Equal(payload, <-got), "the bytes that arrived differ from those written")
}

// Errors read like net.Conn.Write's: a passed write deadline is a
// timeout, a reset peer a *net.OpError with the syscall's error.
func TestConnWriterErrorsLikeNetConn(t *testing.T) {
	client, server := tcpPair(t)
	w := newConnWriter(client)

	// Nobody reads: fill the buffers until the deadline stops the write.
	client.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := w.Write(make([]byte, 64<<20))
	require.Error(t, err)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
	client.SetWriteDeadline(time.Time{})

	// The peer resets (SO_LINGER 0): writes fail, as an OpError "write".
	server.(*net.TCPConn).SetLinger(0)
	server.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write([]byte("x"))
		time.Sleep(5 * time.Millisecond)
	}
	var oe *net.OpError
	require.True(t, errors.As(werr, &oe), "got %T %v", werr, werr)
	require.Equal(t, "write", oe.Op)

	client.Close()
	_, err = w.Write([]byte("x"))
	require.True(t, errors.Is(err, net.ErrClosed), "got %v", err)
}

// rawRead sees EOF as 0 bytes and no error, like read(2).
func TestRawReadAndWrite(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	n, err := rawWrite(int(w.Fd()), []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	w.Close()
	buf := make([]byte, 16)
	n, err = rawRead(int(r.Fd()), buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf[:n]))
	n, err = rawRead(int(r.Fd()), buf)
	require.NoError(t, err)
	require.Equal(t, 0, n)
	_, err = rawRead(-1, buf)
	require.Error(t, err)
	var _ io.Writer = (*connWriter)(nil)
}

// connReader reads like net.Conn.Read: every byte in order, io.EOF at the
// peer's close, a timeout at a passed deadline.
func TestConnReaderLikeNetConn(t *testing.T) {
	client, server := tcpPair(t)
	r := newConnReader(server)
	_, isRaw := r.(*connReader)
	require.True(t, isRaw, "a TCP connection gets the raw reader")

	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := r.Read(make([]byte, 10))
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "got %v", err)
	server.SetReadDeadline(time.Time{})

	payload := make([]byte, 4<<20)
	rand.Read(payload)
	go func() {
		for i := 0; i < len(payload); i += 100 << 10 {
			client.Write(payload[i:min(i+100<<10, len(payload))])
			time.Sleep(time.Millisecond) // the reader must wait between pieces
		}
		client.Close()
	}()
	got, err := io.ReadAll(r) // ReadAll stops at io.EOF, and fails on any other error
	require.NoError(t, err)
	require.True(t, bytes.Equal(payload, got))
	n, err := r.Read(make([]byte, 1))
	require.Equal(t, 0, n)
	require.Equal(t, io.EOF, err)
}

// writeAwait returns only once the answer is there (or the read deadline
// passes, for the next read to report), calls before once per write, and
// reports a closed connection as a write does.
func TestWriteAwaiterWaitsForAnswer(t *testing.T) {
	client, server := tcpPair(t)
	befores := 0
	a := newWriteAwaiter(client, newConnWriter(client), func() { befores++ })
	require.NotNil(t, a)

	const delay = 50 * time.Millisecond
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(server, buf); err != nil {
			return
		}
		time.Sleep(delay)
		server.Write([]byte("answer"))
	}()
	start := time.Now()
	n, err := a.writeAwait([]byte("hello"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.GreaterOrEqual(t, time.Since(start), delay, "returned before the answer came")
	require.Equal(t, 1, befores)
	var r noWaitReader
	r.init(client)
	buf := make([]byte, 16)
	n, ok, err := r.read(buf)
	require.True(t, ok, "readable after writeAwait, without waiting")
	require.NoError(t, err)
	require.Equal(t, "answer", string(buf[:n]))

	// No answer: the deadline ends the wait, and the next read says so.
	client.SetReadDeadline(time.Now().Add(delay))
	n, err = a.writeAwait([]byte("again"))
	require.NoError(t, err)
	require.Equal(t, 5, n)
	require.Equal(t, 2, befores)
	_, err = client.Read(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	client.Close()
	_, err = a.writeAwait([]byte("late"))
	require.ErrorIs(t, err, net.ErrClosed)
	require.Equal(t, 2, befores, "before runs only once a request is out")
}

// A client connection's writer (newSendWriter) waits for a slow reader as
// long as it takes some bytes within each stall, and gives up on one
// that takes none for a stall: a timeout error, and the deadline is
// gone afterwards (the next write, past the stall, works).
func TestSendWriterStallIsNoProgress(t *testing.T) {
	const stall = 200 * time.Millisecond
	client, server := tcpPair(t)
	// Fixed buffers both ways (no autotuning, and not so small that
	// loopback's 64 KiB segments stall): a write of 1 MiB then waits for
	// the reader, which takes 32 KiB every 25 ms, most of a second.
	require.NoError(t, client.(*net.TCPConn).SetWriteBuffer(64<<10))
	require.NoError(t, server.(*net.TCPConn).SetReadBuffer(64<<10))
	w := newSendWriter(client, stall)
	_, isRaw := w.(*connWriter)
	require.True(t, isRaw)

	payload := bytes.Repeat([]byte("s"), 1<<20)
	read := make(chan int, 1)
	go func() {
		total := 0
		buf := make([]byte, 32<<10)
		for total < len(payload) {
			n, err := io.ReadFull(server, buf[:min(len(buf), len(payload)-total)])
			total += n
			if err != nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		read <- total
	}()
	start := time.Now()
	n, err := w.Write(payload)
	require.NoError(t, err, "a slow reader is not a stalled one")
	require.Equal(t, len(payload), n)
	require.Greater(t, time.Since(start), 2*stall, "the write did wait past one stall")
	require.Equal(t, len(payload), <-read)

	// Past a stall later, a write that fits goes through.
	time.Sleep(2 * stall)
	_, err = w.Write([]byte("x"))
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = io.ReadFull(server, b)
	require.NoError(t, err)

	// A reader that takes nothing: the write fails after about a stall.
	start = time.Now()
	_, err = w.Write(bytes.Repeat([]byte("t"), 16<<20))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Less(t, time.Since(start), 10*stall)
}
