package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/ml/vision"
)

const batchFaces = 16

// batching compares one Run of 16 aligned faces with 16 Runs of one face,
// bare and through the pipeline, under several ORT thread settings.
func batching(photos []*photo, iters int, log *slog.Logger) error {
	ctx := context.Background()
	fmt.Printf("## Batch of %d faces vs %d single runs (template model, mobilefacenet_128d_dynbatch)\n\n", batchFaces, batchFaces)

	// The 16 aligned-face tensors: recorded from the pipeline's own
	// extraction on the photos' faces, cycled to 16.
	eng, err := vision.NewEngine(vision.Config{}, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	var singles [][]float32
	var model *ort.Session
	for _, p := range photos {
		if len(p.faces) == 0 {
			continue
		}
		var objs []*vision.Object
		for _, f := range p.faces {
			objs = append(objs, &vision.Object{Class: vision.ClassFace, Box: f.Box, Keypoints: f.Keypoints})
		}
		runs, err := record(eng.Runtime(), func() error {
			_, err := eng.Process(ctx, vision.Request{Image: p.img, Units: vision.NewUnits(vision.UnitTemplateExtractor), Objects: objs})
			return err
		})
		if err != nil {
			return err
		}
		for _, r := range runs {
			model = r.sess
			per := len(r.inputs[0].Data) / int(r.inputs[0].Shape[0])
			for i := range int(r.inputs[0].Shape[0]) {
				singles = append(singles, r.inputs[0].Data[i*per:(i+1)*per])
			}
		}
	}
	for len(singles) < batchFaces {
		singles = append(singles, singles[len(singles)%len(singles)])
	}
	singles = singles[:batchFaces]
	per := len(singles[0])
	batch := make([]float32, 0, per*batchFaces)
	for _, s := range singles {
		batch = append(batch, s...)
	}

	fmt.Printf("Bare onnxruntime_go (DynamicAdvancedSession.Run, tensors preallocated). Each cell: faces/s (wall, best of %d interleaved rounds of %d iterations) and process CPU ms per face:\n\n", rounds, iters)
	fmt.Printf("| ORT threads | 16 single runs, 1 goroutine | 1 batch of 16 | batch gain | 16 singles over 2 sessions in parallel | 2 batches of 8 in parallel |\n|---|---|---|---|---|---|\n")
	for _, intra := range []int{1, 2} {
		rt, err := ort.Open(ort.Config{PoolSize: 1, IntraOpThreads: intra, Provider: ort.ProviderCPU}, log)
		if err != nil {
			return err
		}
		mk := func() (*onnx.DynamicAdvancedSession, error) {
			o, err := rt.SessionOptions()
			if err != nil {
				return nil, err
			}
			defer o.Destroy()
			return onnx.NewDynamicAdvancedSessionWithONNXData(model.Model(), model.InputNames(), model.OutputNames(), o)
		}
		s1, err := mk()
		if err != nil {
			return err
		}
		s2, err := mk()
		if err != nil {
			return err
		}
		in16, _ := onnx.NewTensor(onnx.NewShape(batchFaces, 3, 112, 112), batch)
		out16, _ := onnx.NewEmptyTensor[float32](onnx.NewShape(batchFaces, 128))
		in8a, _ := onnx.NewTensor(onnx.NewShape(8, 3, 112, 112), batch[:8*per])
		in8b, _ := onnx.NewTensor(onnx.NewShape(8, 3, 112, 112), batch[8*per:])
		out8a, _ := onnx.NewEmptyTensor[float32](onnx.NewShape(8, 128))
		out8b, _ := onnx.NewEmptyTensor[float32](onnx.NewShape(8, 128))
		var ins, outs []onnx.Value
		for _, s := range singles {
			t, _ := onnx.NewTensor(onnx.NewShape(1, 3, 112, 112), s)
			o, _ := onnx.NewEmptyTensor[float32](onnx.NewShape(1, 128))
			ins, outs = append(ins, t), append(outs, o)
		}
		single := func() error {
			for i := range ins {
				if err := s1.Run([]onnx.Value{ins[i]}, []onnx.Value{outs[i]}); err != nil {
					return err
				}
			}
			return nil
		}
		batched := func() error { return s1.Run([]onnx.Value{in16}, []onnx.Value{out16}) }
		parallelSingles := func() error {
			return parallel(func() error {
				for i := 0; i < 8; i++ {
					if err := s1.Run([]onnx.Value{ins[i]}, []onnx.Value{outs[i]}); err != nil {
						return err
					}
				}
				return nil
			}, func() error {
				for i := 8; i < 16; i++ {
					if err := s2.Run([]onnx.Value{ins[i]}, []onnx.Value{outs[i]}); err != nil {
						return err
					}
				}
				return nil
			})
		}
		parallelBatches := func() error {
			return parallel(func() error { return s1.Run([]onnx.Value{in8a}, []onnx.Value{out8a}) },
				func() error { return s2.Run([]onnx.Value{in8b}, []onnx.Value{out8b}) })
		}
		res, err := compare(iters, single, batched, parallelSingles, parallelBatches)
		if err != nil {
			return err
		}
		fmt.Printf("| intra-op %d | %s | %s | %.2fx | %s | %s |\n", intra, res[0], res[1], res[1].rate/res[0].rate, res[2], res[3])
		for _, v := range append(append(ins, outs...), in16, out16, in8a, in8b, out8a, out8b) {
			v.Destroy()
		}
		s1.Destroy()
		s2.Destroy()
	}

	// Through the pipeline: one Process with 16 given faces (one batched Run)
	// against 16 Process calls with one face each.
	var img *photo
	for _, p := range photos {
		if len(p.faces) >= 2 {
			img = p
			break
		}
	}
	objs := func(n int, from int) []*vision.Object {
		var out []*vision.Object
		for i := range n {
			f := img.faces[(from+i)%len(img.faces)]
			out = append(out, &vision.Object{Class: vision.ClassFace, Box: f.Box, Keypoints: f.Keypoints})
		}
		return out
	}
	units := vision.NewUnits(vision.UnitTemplateExtractor)
	pipeBatch := func() error {
		_, err := eng.Process(ctx, vision.Request{Image: img.img, Units: units, Objects: objs(batchFaces, 0)})
		return err
	}
	pipeSingles := func() error {
		for i := range batchFaces {
			if _, err := eng.Process(ctx, vision.Request{Image: img.img, Units: units, Objects: objs(1, i)}); err != nil {
				return err
			}
		}
		return nil
	}
	pipeSinglesParallel := func() error {
		half := func(from int) func() error {
			return func() error {
				for i := from; i < from+batchFaces/2; i++ {
					if _, err := eng.Process(ctx, vision.Request{Image: img.img, Units: units, Objects: objs(1, i)}); err != nil {
						return err
					}
				}
				return nil
			}
		}
		return parallel(half(0), half(batchFaces/2))
	}
	res, err := compare(iters, pipeSingles, pipeBatch, pipeSinglesParallel)
	if err != nil {
		return err
	}
	cfg := eng.Runtime().Config()
	fmt.Printf("\nThrough the pipeline (vision.Engine.Process on %s, default settings: pool %d, intra-op %d), faces/s:\n\n", img.name, cfg.PoolSize, cfg.IntraOpThreads)
	fmt.Printf("| 16 Process calls of 1 face | 1 Process call of 16 faces | batch gain | 16 calls of 1 face from 2 goroutines |\n|---|---|---|---|\n")
	fmt.Printf("| %s | %s | %.2fx | %s |\n\n", res[0], res[1], res[1].rate/res[0].rate, res[2])
	return nil
}

const rounds = 5

// result is one variant's best round: faces per second of wall time and
// process CPU time per face.
type result struct {
	rate     float64
	cpuPerMS float64
}

func (r result) String() string { return fmt.Sprintf("%.1f/s, %.2f ms CPU", r.rate, r.cpuPerMS) }

// compare runs the variants (each handles 16 faces per call) in
// interleaved rounds, so a burst of other work on the machine hits them
// alike, and keeps each variant's best round.
func compare(iters int, variants ...func() error) ([]result, error) {
	for _, f := range variants { // warm-up
		if err := f(); err != nil {
			return nil, err
		}
	}
	best := make([]result, len(variants))
	for range rounds {
		for i, f := range variants {
			c0, t0 := processCPU(), time.Now()
			for range iters {
				if err := f(); err != nil {
					return nil, err
				}
			}
			faces := float64(batchFaces * iters)
			r := result{rate: faces / time.Since(t0).Seconds(), cpuPerMS: ms(processCPU()-c0) / faces}
			if r.rate > best[i].rate {
				best[i] = r
			}
		}
	}
	return best, nil
}

func parallel(fs ...func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fs))
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
