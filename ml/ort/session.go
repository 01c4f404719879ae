package ort

import (
	"context"
	"errors"
	"fmt"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Tensor is a float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Session is a pool of ONNX Runtime sessions of one model. ONNX Runtime's Run
// is thread-safe, but one session serialises much of its work; a pool of
// single-threaded sessions lets requests use every core at once.
type Session struct {
	name    string
	model   []byte
	inputs  []string
	outputs []string
	pool    chan *onnx.DynamicAdvancedSession
	all     []*onnx.DynamicAdvancedSession
	rt      *Runtime

	closeOnce sync.Once
	closeErr  error
}

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("onnx session closed")

// NewSession loads a model from its bytes into a pool of sessions.
func (r *Runtime) NewSession(name string, model []byte, inputs, outputs []string) (*Session, error) {
	s := &Session{
		name:    name,
		model:   model,
		rt:      r,
		inputs:  inputs,
		outputs: outputs,
		pool:    make(chan *onnx.DynamicAdvancedSession, r.cfg.PoolSize),
	}
	for range r.cfg.PoolSize {
		opts, err := r.sessionOptions()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("model %s: %w", name, err)
		}
		ds, err := onnx.NewDynamicAdvancedSessionWithONNXData(model, inputs, outputs, opts)
		opts.Destroy()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("model %s: create session: %w", name, err)
		}
		s.all = append(s.all, ds)
		s.pool <- ds
	}
	return s, nil
}

// Parallelism is how many Runs of the model can execute at once (the pool's size).
func (s *Session) Parallelism() int { return cap(s.pool) }

// Name is the model's name as given to NewSession.
func (s *Session) Name() string { return s.name }

// Model is the ONNX model the session runs (benchmarks load it into bare
// onnxruntime_go sessions).
func (s *Session) Model() []byte { return s.model }

// InputNames are the model inputs Run takes, in order.
func (s *Session) InputNames() []string { return s.inputs }

// OutputNames are the model outputs Run returns, in order.
func (s *Session) OutputNames() []string { return s.outputs }

// Run runs the model once. It waits for a free session of the pool (or for
// ctx), wraps the input slices without copying them, and copies the outputs
// into Go memory.
func (s *Session) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("model %s: %d inputs given, %d expected", s.name, len(inputs), len(s.inputs))
	}
	if rec := s.rt.recorder.Load(); rec != nil {
		(*rec)(s, inputs)
	}
	if err := ctx.Err(); err != nil {
		return nil, err // a cancelled request never starts a model
	}
	var ds *onnx.DynamicAdvancedSession
	select {
	case ds = <-s.pool:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if ds == nil {
		return nil, ErrClosed
	}
	defer func() { s.pool <- ds }()

	in := make([]onnx.Value, len(inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		v, err := onnx.NewTensor(onnx.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("model %s: input %s: %w", s.name, s.inputs[i], err)
		}
		in[i] = v
	}
	out := make([]onnx.Value, len(s.outputs))
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := ds.Run(in, out); err != nil {
		return nil, fmt.Errorf("model %s: run: %w", s.name, err)
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*onnx.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("model %s: output %s is %T, want float32 tensor", s.name, s.outputs[i], v)
		}
		res[i] = Tensor{Shape: t.GetShape(), Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

// Close destroys every session of the pool; runs in flight finish first.
// Later calls return the first call's result.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for range s.all {
			ds := <-s.pool
			if err := ds.Destroy(); err != nil {
				errs = append(errs, err)
			}
		}
		s.all = nil
		close(s.pool)
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
