package vision

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
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
	benchProcessGiven(b, units, false)
}

// benchProcessGiven runs units on every photo; with given, on the faces the
// detector found beforehand (boxes and 5 points), as a client would send them.
func benchProcessGiven(b *testing.B, units Units, given bool) {
	imgs := benchPhotos(b)
	objs := make([][]*Object, len(imgs))
	if given {
		for i, img := range imgs {
			s, err := engine.Process(context.Background(), Request{Image: img, Units: NewUnits(UnitFaceDetector)})
			if err != nil {
				b.Fatal(err)
			}
			objs[i] = s.Objects
		}
	}
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		for i, img := range imgs {
			if given && len(objs[i]) == 0 {
				continue
			}
			if _, err := engine.Process(context.Background(), Request{Image: img, Units: units, Objects: objs[i]}); err != nil {
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

// BenchmarkProcessExtraction computes templates of given faces.
func BenchmarkProcessExtraction(b *testing.B) {
	benchProcessGiven(b, NewUnits(UnitTemplateExtractor), true)
}

// BenchmarkProcessAll runs every unit on every test photo.
func BenchmarkProcessAll(b *testing.B) { benchProcess(b, NewUnits(AllUnits...)) }

// BenchmarkDetectorStages splits detection's own work on every photo: the
// input tensor, and the decoding of the model's outputs (anchors, NMS).
func BenchmarkDetectorStages(b *testing.B) {
	imgs := benchPhotos(b)
	d := engine.detector
	outs := make([][]ort.Tensor, len(imgs))
	for i, img := range imgs {
		in := d.input(img)
		out, err := d.sess.Run(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		putBuffer(in.Data)
		outs[i] = out
	}
	opt := engine.faceOptions(FaceOptions{})
	b.Run("input", func(b *testing.B) {
		cpu0 := processCPU()
		for b.Loop() {
			for _, img := range imgs {
				putBuffer(d.input(img).Data)
			}
		}
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*len(imgs))/1e6, "cpu-ms/image")
	})
	b.Run("decode", func(b *testing.B) {
		cpu0 := processCPU()
		for b.Loop() {
			for i, img := range imgs {
				d.decode(outs[i], img.W, img.H, opt)
			}
		}
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*len(imgs))/1e6, "cpu-ms/image")
	})
}
