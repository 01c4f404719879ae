package lb

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Without GOGC, a standalone lb collects at 400 % above a heap floor;
// an operator's GOGC leaves the collector alone.
func TestTuneStandaloneGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev); ballast = nil })

	t.Setenv("GOGC", "150")
	TuneStandaloneGC()
	require.Equal(t, 100, debug.SetGCPercent(100), "an operator's GOGC wins")
	require.Nil(t, ballast)

	t.Setenv("GOGC", "")
	TuneStandaloneGC()
	require.Equal(t, 400, debug.SetGCPercent(100))
	require.Len(t, ballast, ballastSize)
}
