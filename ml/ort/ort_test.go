package ort

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigilhq/vigil/models"
)

func TestLibraryPath(t *testing.T) {
	found, err := LibraryPath("")
	require.NoError(t, err, "run deploy/onnxruntime.sh first")
	root, ok := RepoRoot(".")
	require.True(t, ok)
	require.Equal(t, filepath.Join(root, ".cache", "onnxruntime", "libonnxruntime.so.1"), found)

	// The configured path wins over the discovered cache; the environment over both.
	require.Equal(t, found, must(LibraryPath(found)))
	_, err = LibraryPath("/nonexistent/libonnxruntime.so.1")
	require.Error(t, err)
	t.Setenv(EnvLibraryPath, "/nonexistent/from-env.so")
	_, err = LibraryPath(found)
	require.ErrorContains(t, err, EnvLibraryPath)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, Config{}.Validate())
	require.Error(t, Config{Provider: "tpu"}.Validate())
	require.Error(t, Config{PoolSize: -1}.Validate())
	d := Config{}.WithDefaults()
	require.Equal(t, ProviderAuto, d.Provider)
	require.GreaterOrEqual(t, d.PoolSize, 1)
	require.Equal(t, 1, d.IntraOpThreads)
}

func open(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	rt, err := Open(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return rt
}

func TestSessionRunsAndFailsCleanly(t *testing.T) {
	model, err := models.Source{}.Read(models.FaceTemplate)
	require.NoError(t, err)
	rt := open(t, Config{PoolSize: 2})
	s, err := rt.NewSession("mobilefacenet", model, []string{"input"}, []string{"output"})
	require.NoError(t, err)
	require.Equal(t, []string{"input"}, s.InputNames())

	// Where CUDA's provider library is absent, auto falls back to the CPU.
	if _, err := os.Stat(filepath.Join(filepath.Dir(rt.libPath), cudaProviderLib)); err != nil {
		require.Equal(t, ProviderCPU, rt.Provider())
		_, err := open(t, Config{Provider: ProviderCUDA}).NewSession("x", model, []string{"input"}, []string{"output"})
		require.ErrorContains(t, err, "cuda is required")
	}

	in := Tensor{Shape: []int64{3, 3, 112, 112}, Data: make([]float32, 3*3*112*112)}
	var seen []string
	rt.SetRecorder(func(s *Session, in []Tensor) { seen = append(seen, s.Name()) })
	out, err := s.Run(context.Background(), in)
	rt.SetRecorder(nil)
	require.NoError(t, err)
	require.Equal(t, []int64{3, 128}, out[0].Shape)
	require.Len(t, out[0].Data, 3*128)
	require.Equal(t, []string{"mobilefacenet"}, seen)

	_, err = s.Run(context.Background())
	require.ErrorContains(t, err, "0 inputs given")
	_, err = s.Run(context.Background(), Tensor{Shape: []int64{1, 3, 5, 5}, Data: make([]float32, 75)})
	require.Error(t, err, "a wrong shape is an error, not a crash")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Run(ctx, in)
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "closing twice is harmless")
	_, err = s.Run(context.Background(), in)
	require.ErrorIs(t, err, ErrClosed)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
