package vision

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/ml/imgproc"
)

// Profiling aids for the pipeline's own cost (run with -cpuprofile); the
// comparison against bare ONNX Runtime lives in bench/imageapi.

func benchPhotos(b *testing.B) []*imgproc.RGB {
	b.Helper()
	dir := filepath.Join("..", "..", "testdata", "faces")
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var out []*imgproc.RGB
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		d, err := engine.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, d.RGB)
	}
	return out
}

func benchProcess(b *testing.B, units Units) {
	imgs := benchPhotos(b)
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		for _, img := range imgs {
			if _, err := engine.Process(context.Background(), Request{Image: img, Units: units}); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Process CPU time (all threads, ONNX Runtime's included) per image: the
	// measure a shared machine disturbs least.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*len(imgs))/1e6, "cpu-ms/image")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProcessDetection is face detection on every test photo.
func BenchmarkProcessDetection(b *testing.B) { benchProcess(b, NewUnits(UnitFaceDetector)) }

// BenchmarkProcessAll runs every unit on every test photo.
func BenchmarkProcessAll(b *testing.B) { benchProcess(b, NewUnits(AllUnits...)) }
