//go:build lbstamps && linux

package lb

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A latency breakdown of the HTTP/1.1 fast path, for tuning: built with
// `-tags lbstamps`, the proxy reads with recvmsg and the kernel's receive
// time stamp (SO_TIMESTAMPNS), and prints to standard error every 3 s,
// as percentiles in µs (25 µs buckets):
//
//	A  a request's arrival in the socket to its head parsed
//	E  the head parsed to the upstream answer's arrival (our write, the
//	   upstream's work)
//	C  the answer's arrival to its head read
//	D  the answer's head read to the answer written to the client
//	T  the request's arrival to the answer written (what the proxy adds
//	   to a client's latency, with the upstream's time)
//	gap (hit, miss)  the answer written to the next request's head
//	   parsed, when the first read found the request, and when it waited
//	   (the client's time and the proxy's).
//
// bench/lb/RESULTS.md ("Run 31") reads one.
const stampsOn = true

// stampAt holds the receive stamp (ns, wall clock) of the last read of
// each descriptor.
var stampAt [1 << 16]atomic.Int64

// stampedRead is rawRead with the receive stamp kept in stampAt.
func stampedRead(fd int, p []byte) (int, error) {
	var oob [64]byte
	var iov syscall.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
	}
	iov.SetLen(len(p))
	msg := syscall.Msghdr{Iov: &iov, Iovlen: 1, Control: &oob[0]}
	msg.SetControllen(len(oob))
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		if fd < len(stampAt) {
			// 0 when the read came without a stamp: the kernel turns
			// receive stamps on some time after the first socket asks
			// for them (a deferred static key).
			var at int64
			if cms, err := syscall.ParseSocketControlMessage(oob[:msg.Controllen]); err == nil {
				for _, cm := range cms {
					if cm.Header.Level == unix.SOL_SOCKET && cm.Header.Type == unix.SO_TIMESTAMPNS && len(cm.Data) >= 16 {
						at = (*unix.Timespec)(unsafe.Pointer(&cm.Data[0])).Nano()
					}
				}
			}
			stampAt[fd].Store(at)
		}
		return int(n), nil
	}
}

// stampFD turns stamps on for nc and returns its descriptor (-1: none).
func stampFD(nc net.Conn) int {
	fd := -1
	if raw := rawConnOf(nc); raw != nil {
		raw.Control(func(f uintptr) {
			if unix.SetsockoptInt(int(f), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil && int(f) < len(stampAt) {
				fd = int(f)
			}
		})
	}
	startStampReport()
	return fd
}

func stampOf(fd int) int64 {
	if fd < 0 {
		return 0
	}
	return stampAt[fd].Load()
}

type connStamps struct {
	fd     int
	missed bool
	done   int64 // when the last answer was written
	arrive int64 // the running request's
}

type ctxStamps struct{ head, answer int64 }

type upStamps struct{ fd int }

func (s *connStamps) init(nc net.Conn) { s.fd = stampFD(nc) }
func (s *connStamps) waited()          { s.missed = true }

func (s *connStamps) headRead(x *h1ConnCtx, first bool) {
	now := time.Now().UnixNano()
	s.arrive = stampOf(s.fd)
	x.stamps.head = now
	if s.arrive != 0 {
		stampA.add(now - s.arrive)
	}
	if !first {
		if s.missed {
			stampGapMiss.add(now - s.done)
		} else {
			stampGapHit.add(now - s.done)
		}
	}
	s.missed = false
}

func (s *connStamps) answered(x *h1ConnCtx, first bool) {
	s.done = time.Now().UnixNano()
	if x.stamps.answer != 0 {
		stampD.add(s.done - x.stamps.answer)
		if s.arrive != 0 {
			stampT.add(s.done - s.arrive)
		}
	}
	x.stamps.answer = 0
}

func (u *upStamps) answerRead(nc net.Conn, x *h1ConnCtx) {
	if x == nil {
		return
	}
	if u.fd == 0 {
		u.fd = stampFD(nc)
	}
	now := time.Now().UnixNano()
	arrive := stampOf(u.fd)
	x.stamps.answer = now
	if arrive != 0 {
		stampC.add(now - arrive)
		stampE.add(arrive - x.stamps.head)
	}
}

// stampHist counts durations in 25 µs buckets up to 10 ms.
type stampHist struct{ b [400]atomic.Int64 }

func (h *stampHist) add(ns int64) {
	i := min(max(int(ns/25000), 0), len(h.b)-1)
	h.b[i].Add(1)
}

// take returns the percentiles of what h counted since the last take.
func (h *stampHist) take() string {
	var v [400]int64
	var total int64
	for i := range h.b {
		v[i] = h.b[i].Swap(0)
		total += v[i]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "n=%d", total)
	var cum int64
	ps := []float64{50, 90, 98, 99, 99.9}
	j := 0
	for i := range v {
		cum += v[i]
		for j < len(ps) && float64(cum) >= ps[j]/100*float64(total) && total > 0 {
			fmt.Fprintf(&sb, " p%g=%d", ps[j], (i+1)*25)
			j++
		}
	}
	return sb.String()
}

var stampA, stampE, stampC, stampD, stampT, stampGapHit, stampGapMiss stampHist

var startStampReport = sync.OnceFunc(func() {
	go func() {
		for range time.Tick(3 * time.Second) {
			fmt.Fprintf(os.Stderr, "lbstamps µs\nA %s\nE %s\nC %s\nD %s\nT %s\ngap hit %s\ngap miss %s\n\n",
				stampA.take(), stampE.take(), stampC.take(), stampD.take(), stampT.take(), stampGapHit.take(), stampGapMiss.take())
		}
	}()
})
