//go:build unix

package lb

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// raiseSIGHUP sends this process SIGHUP.
func raiseSIGHUP(t *testing.T) {
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
}
