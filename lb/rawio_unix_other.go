//go:build unix && !linux

package lb

import "syscall"

// Elsewhere the plain system calls are used (see rawio_linux.go).
func rawRead(fd int, p []byte) (int, error)  { return syscall.Read(fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }
