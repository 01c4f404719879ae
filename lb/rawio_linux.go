package lb

import (
	"syscall"
	"unsafe"
)

// rawRead and rawWrite are read(2) and write(2) on a non-blocking socket
// without the runtime's entersyscall/exitsyscall, retried on EINTR. Such a call never
// blocks, so the scheduler has nothing to hand off; and an entersyscall
// after the P was idle wakes sysmon from its deep sleep and resets it to
// 20 µs polling. Under GOMAXPROCS=1 on a busy proxy that polling, on the
// same core, cost about 8 % of the process's CPU (perf, bench/lb).
//
// They skip the race detector's annotations of syscall.Read and Write
// too, which order every read after every earlier write in the process:
// -race then sees races those annotations used to hide.
func rawRead(fd int, p []byte) (int, error) {
	if stampsOn { // -tags lbstamps (stamps_on.go)
		return stampedRead(fd, p)
	}
	return rawIO(syscall.SYS_READ, fd, p)
}
func rawWrite(fd int, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue // interrupted by a signal before anything moved: again
		}
		return 0, e
	}
}
