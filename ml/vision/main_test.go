package vision

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vigilhq/vigil/ml/imgproc"
)

// engine is shared by the package's tests: loading the models once keeps the
// tests fast (they run the real models on the real photos in testdata/).
var engine *Engine

func TestMain(m *testing.M) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := NewEngine(Config{}, log)
	if err != nil {
		log.Error("engine", "err", err)
		os.Exit(1)
	}
	engine = e
	code := m.Run()
	e.Close()
	os.Exit(code)
}

func photo(t testing.TB, name string) *imgproc.RGB {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "faces", name))
	require.NoError(t, err)
	d, err := engine.Decode(b)
	require.NoError(t, err)
	return d.RGB
}

func process(t testing.TB, img *imgproc.RGB, units ...Unit) *Sample {
	t.Helper()
	s, err := engine.Process(context.Background(), Request{Image: img, Units: NewUnits(units...)})
	require.NoError(t, err)
	return s
}

func faces(s *Sample) []*Object {
	var out []*Object
	for _, o := range s.Objects {
		if o.Class == ClassFace {
			out = append(out, o)
		}
	}
	return out
}

func bodies(s *Sample) []*Object {
	var out []*Object
	for _, o := range s.Objects {
		if o.Class == ClassBody {
			out = append(out, o)
		}
	}
	return out
}

// largestFace is the main subject of a single-person photo.
func largestFace(t testing.TB, s *Sample) *Object {
	t.Helper()
	fs := faces(s)
	require.NotEmpty(t, fs)
	best := fs[0]
	for _, f := range fs[1:] {
		if f.Box.Area() > best.Box.Area() {
			best = f
		}
	}
	return best
}
