package datadir

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	require.NoError(t, err)
	_, err = Acquire(dir)
	require.ErrorIs(t, err, ErrInUse, "a second holder is refused")
	require.NoError(t, l.Release())
	l2, err := Acquire(dir)
	require.NoError(t, err, "free again after release")
	require.NoError(t, l2.Release())
	require.NoError(t, (*Lock)(nil).Release())
}
