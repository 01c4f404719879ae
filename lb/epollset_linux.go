//go:build linux

package lb

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// epollSet is an epoll set of the proxy's own (the answer poller's, the
// idle parker's). Its descriptor is non-blocking and given to
// os.NewFile, so Go's poller watches it: it is readable while the set
// holds events, and a goroutine waits for that in raw.Read.
type epollSet struct {
	fd  int
	f   *os.File // owns fd
	raw syscall.RawConn
}

func newEpollSet(name string) (epollSet, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return epollSet{}, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return epollSet{}, err
	}
	f := os.NewFile(uintptr(fd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return epollSet{}, err
	}
	return epollSet{fd: fd, f: f, raw: raw}, nil
}

// epollEvent is an event for events that carries id (in Fd and Pad).
func epollEvent(events uint32, id uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: events, Fd: int32(id), Pad: int32(id >> 32)}
}

// epollID is the id an event carries (epollEvent).
func epollID(ev unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
