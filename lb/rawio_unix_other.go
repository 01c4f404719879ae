//go:build unix && !linux

package lb

import "syscall"

// Elsewhere the plain system calls are used (see rawio_linux.go), also
// retried on EINTR.
func rawRead(fd int, p []byte) (int, error)  { return retryEINTR(syscall.Read, fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return retryEINTR(syscall.Write, fd, p) }

func retryEINTR(call func(int, []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := call(fd, p)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
