package imgproc

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkSampleDetector resamples obama_3.jpg (1434x2333) the way the face
// detector does: the longer side to 640, aspect kept, BGR, raw 0..255.
func BenchmarkSampleDetector(b *testing.B) {
	d, err := Decode(readPhoto(b, "obama_3.jpg"), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	k := float64(max(d.W, d.H)) / 640
	w, h := 416, 640
	dst := make([]float32, 3*w*h)
	b.SetBytes(int64(w * h))
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		d.SampleInto(dst, w, h, ResizeMap(0, 0, k*float64(w), k*float64(h), w, h), BGRPlanes, Raw, Border{})
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSampleAligned is the template extractor's 112x112 rotated warp.
func BenchmarkSampleAligned(b *testing.B) {
	d, err := Decode(readPhoto(b, "obama_1.jpg"), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 3*112*112)
	t := Affine{A: 2.1, B: -0.3, C: 300, D: 0.3, E: 2.1, F: 200}
	for b.Loop() {
		d.SampleInto(dst, 112, 112, t, RGBPlanes, Uniform(127.5, 1/127.5), Border{})
	}
}

// BenchmarkSampleMask is the mask unit's 640x480 input from a face window
// (an upscale of a region that stays in cache).
func BenchmarkSampleMask(b *testing.B) {
	d, err := Decode(readPhoto(b, "obama_1.jpg"), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, 3*640*480)
	b.SetBytes(640 * 480)
	for b.Loop() {
		d.SampleInto(dst, 640, 480, ResizeMap(250, 20, 480, 360, 640, 480), RGBPlanes, Uniform(127, 1.0/128), Border{Fill: [3]uint8{127, 127, 127}})
	}
}

// BenchmarkSampleLetterbox is the body detector's 416x416 letterbox of the
// tall biden_1.jpg (970x2204): more than half the input is padding.
func BenchmarkSampleLetterbox(b *testing.B) {
	d, err := Decode(readPhoto(b, "biden_1.jpg"), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	r := 416 / float64(max(d.W, d.H))
	dst := make([]float32, 3*416*416)
	for b.Loop() {
		d.SampleInto(dst, 416, 416, Affine{A: 1 / r, C: 0.5/r - 0.5, E: 1 / r, F: 0.5/r - 0.5}, BGRPlanes, Raw, Border{Fill: [3]uint8{114, 114, 114}})
	}
}
