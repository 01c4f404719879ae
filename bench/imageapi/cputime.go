package main

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the whole process has used:
// its goroutines, the garbage collector and ONNX Runtime's threads. On a
// machine shared with other work it moves far less than wall time, so the
// pipeline-vs-bare comparison is reported in both.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
