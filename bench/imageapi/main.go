// Command imageapi benchmarks the Image API pipeline against bare
// onnxruntime_go Run on the same tensors, in the same run:
//
//   - per-image latency and faces/s of face detection, template extraction
//     and a full Process (all units), each next to the sum of bare Runs of
//     exactly the tensors that call fed its models (recorded through
//     ort.Runtime.SetRecorder, replayed through bare sessions built with the
//     same session options), interleaved iteration by iteration so machine
//     noise hits both alike;
//   - a batch of 16 faces against 16 single runs of the template model,
//     bare and through the pipeline, under several thread settings.
//
// Usage (from the repository root, after deploy/onnxruntime.sh):
//
//	go run ./bench/imageapi -iters 30
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/ml/vision"
)

func main() {
	photos := flag.String("photos", "testdata/faces", "folder of test photos")
	iters := flag.Int("iters", 20, "timed iterations per measurement")
	flag.Parse()
	if err := run(*photos, *iters); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(dir string, iters int) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := vision.NewEngine(vision.Config{}, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	cfg := eng.Runtime().Config()
	fmt.Printf("# Image API benchmark\n\n")
	fmt.Printf("- date: %s\n- go: %s, GOMAXPROCS %d, NumCPU %d\n- onnxruntime: %s, provider %s\n- default ORT settings: pool %d sessions/model, intra-op %d, inter-op %d\n- iterations per measurement: %d\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(),
		onnx.GetVersion(), eng.Provider(), cfg.PoolSize, cfg.IntraOpThreads, cfg.InterOpThreads, iters)

	images, err := loadPhotos(eng, dir)
	if err != nil {
		return err
	}
	if err := pipelineVsBare(eng, images, iters); err != nil {
		return err
	}
	return batching(images, iters, log)
}

type photo struct {
	name   string
	bytes  []byte
	img    *imgproc.RGB
	faces  []*vision.Object // detected, for the extraction scenario
	decode time.Duration
}

func loadPhotos(eng *vision.Engine, dir string) ([]*photo, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	var out []*photo
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		const decodes = 3
		start := time.Now()
		var d *imgproc.Decoded
		for range decodes {
			if d, err = eng.Decode(b); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
		}
		p := &photo{name: filepath.Base(f), bytes: b, img: d.RGB, decode: time.Since(start) / decodes}
		s, err := eng.Process(context.Background(), vision.Request{Image: d.RGB, Units: vision.NewUnits(vision.UnitFaceDetector)})
		if err != nil {
			return nil, err
		}
		p.faces = s.Objects
		out = append(out, p)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out, nil
}

// recorded is one Run of a pipeline call: the session and a copy of its inputs.
type recorded struct {
	sess   *ort.Session
	inputs []ort.Tensor
}

// record runs call once with the recorder on and returns every Run it made.
func record(rt *ort.Runtime, call func() error) ([]recorded, error) {
	var mu sync.Mutex
	var runs []recorded
	rt.SetRecorder(func(s *ort.Session, in []ort.Tensor) {
		cp := make([]ort.Tensor, len(in))
		for i, t := range in {
			cp[i] = ort.Tensor{Shape: append([]int64(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
		}
		mu.Lock()
		runs = append(runs, recorded{sess: s, inputs: cp})
		mu.Unlock()
	})
	defer rt.SetRecorder(nil)
	return runs, call()
}

// bareRun is one recorded Run prepared for bare onnxruntime_go: input and
// output tensors allocated once, an AdvancedSession bound to them.
type bareRun struct {
	sess   *onnx.AdvancedSession
	values []onnx.Value
}

func (b *bareRun) Run() error { return b.sess.Run() }

func (b *bareRun) Destroy() {
	b.sess.Destroy()
	for _, v := range b.values {
		v.Destroy()
	}
}

// prepareBare builds bare sessions for recorded runs, with the runtime's
// session options (same threads, same provider).
func prepareBare(rt *ort.Runtime, runs []recorded) ([]*bareRun, error) {
	var out []*bareRun
	for _, r := range runs {
		opts, err := rt.SessionOptions()
		if err != nil {
			return nil, err
		}
		// Learn output shapes with one dynamic run.
		dyn, err := onnx.NewDynamicAdvancedSessionWithONNXData(r.sess.Model(), r.sess.InputNames(), r.sess.OutputNames(), opts)
		if err != nil {
			opts.Destroy()
			return nil, err
		}
		var ins []onnx.Value
		for _, t := range r.inputs {
			v, err := onnx.NewTensor(onnx.NewShape(t.Shape...), t.Data)
			if err != nil {
				return nil, err
			}
			ins = append(ins, v)
		}
		outs := make([]onnx.Value, len(r.sess.OutputNames()))
		if err := dyn.Run(ins, outs); err != nil {
			return nil, err
		}
		dyn.Destroy()
		var outTensors []onnx.Value
		for _, o := range outs {
			t, err := onnx.NewEmptyTensor[float32](o.GetShape())
			if err != nil {
				return nil, err
			}
			o.Destroy()
			outTensors = append(outTensors, t)
		}
		s, err := onnx.NewAdvancedSessionWithONNXData(r.sess.Model(), r.sess.InputNames(), r.sess.OutputNames(), ins, outTensors, opts)
		opts.Destroy()
		if err != nil {
			return nil, err
		}
		out = append(out, &bareRun{sess: s, values: append(ins, outTensors...)})
	}
	return out, nil
}

type scenario struct {
	name  string
	units vision.Units
	// objects returns the request objects (nil: detect).
	objects func(p *photo) []*vision.Object
}

func pipelineVsBare(eng *vision.Engine, photos []*photo, iters int) error {
	ctx := context.Background()
	givenFaces := func(p *photo) []*vision.Object {
		var out []*vision.Object
		for _, f := range p.faces {
			out = append(out, &vision.Object{Class: vision.ClassFace, Box: f.Box, Keypoints: f.Keypoints, Confidence: f.Confidence})
		}
		return out
	}
	scenarios := []scenario{
		{name: "detection (face_detector)", units: vision.NewUnits(vision.UnitFaceDetector)},
		{name: "extraction (template_extractor on given faces, one batch per image)", units: vision.NewUnits(vision.UnitTemplateExtractor), objects: givenFaces},
		{name: "full Process (all 10 units)", units: vision.NewUnits(vision.AllUnits...)},
	}
	fmt.Printf("## Pipeline vs bare onnxruntime_go Run, one request at a time\n\n")
	fmt.Printf("Pipeline = vision.Engine.Process on the decoded image (preprocessing, session pool, post-processing, NMS, PnP, conversions).\n")
	fmt.Printf("Bare = AdvancedSession.Run on the very tensors that Process fed the models (recorded), inputs and outputs preallocated.\n")
	fmt.Printf("JPEG/PNG decoding is reported apart (it is not inference and the bare side has no equivalent).\n\n")
	fmt.Printf("Runner = the pipeline's ort.Session.Run (pool, tensor wrapping, output copy) on the recorded tensors: the inference path without image preprocessing.\n\n")
	fmt.Printf("| scenario | images | faces | pipeline ms/image | bare ms/image | overhead (wall) | pipeline CPU ms/image | bare CPU ms/image | overhead (CPU) | runner CPU ms/image | runner overhead (CPU) | pipeline faces/s | bare faces/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		var pipe, bare, pipeCPU, bareCPU, runCPU time.Duration
		faces, images := 0, 0
		for _, p := range photos {
			if sc.objects != nil && len(p.faces) == 0 {
				continue
			}
			req := func() vision.Request {
				r := vision.Request{Image: p.img, Units: sc.units}
				if sc.objects != nil {
					r.Objects = sc.objects(p)
				}
				return r
			}
			var nFaces int
			runs, err := record(eng.Runtime(), func() error {
				s, err := eng.Process(ctx, req())
				if s != nil {
					for _, o := range s.Objects {
						if o.Class == vision.ClassFace {
							nFaces++
						}
					}
				}
				return err
			})
			if err != nil {
				return err
			}
			bares, err := prepareBare(eng.Runtime(), runs)
			if err != nil {
				return err
			}
			// warm-up
			for range 2 {
				if _, err := eng.Process(ctx, req()); err != nil {
					return err
				}
				for _, b := range bares {
					if err := b.Run(); err != nil {
						return err
					}
				}
			}
			for range iters {
				r := req()
				c0, t0 := processCPU(), time.Now()
				if _, err := eng.Process(ctx, r); err != nil {
					return err
				}
				c1, t1 := processCPU(), time.Now()
				for _, b := range bares {
					if err := b.Run(); err != nil {
						return err
					}
				}
				c2, t2 := processCPU(), time.Now()
				for _, r := range runs {
					if _, err := r.sess.Run(ctx, r.inputs...); err != nil {
						return err
					}
				}
				c3 := processCPU()
				pipe += t1.Sub(t0)
				bare += t2.Sub(t1)
				pipeCPU += c1 - c0
				bareCPU += c2 - c1
				runCPU += c3 - c2
			}
			for _, b := range bares {
				b.Destroy()
			}
			faces += nFaces * iters
			images += iters
		}
		pm := ms(pipe) / float64(images)
		bm := ms(bare) / float64(images)
		pc := ms(pipeCPU) / float64(images)
		bc := ms(bareCPU) / float64(images)
		rc := ms(runCPU) / float64(images)
		fmt.Printf("| %s | %d | %d | %.2f | %.2f | %+.1f%% | %.2f | %.2f | %+.1f%% | %.2f | %+.1f%% | %.1f | %.1f |\n", sc.name, images/iters, faces/iters, pm, bm, (pm/bm-1)*100,
			pc, bc, (pc/bc-1)*100, rc, (rc/bc-1)*100, float64(faces)/pipe.Seconds(), float64(faces)/bare.Seconds())
	}
	var dec time.Duration
	var bytes int
	for _, p := range photos {
		dec += p.decode
		bytes += len(p.bytes)
	}
	fmt.Printf("\nDecoding (once per photo, EXIF orientation included): %.2f ms/image on average over %d photos (%.1f MB in all).\n\n", ms(dec)/float64(len(photos)), len(photos), float64(bytes)/1e6)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
