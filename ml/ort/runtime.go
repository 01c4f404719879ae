package ort

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	onnx "github.com/yalue/onnxruntime_go"
)

// Provider names the execution provider sessions run on.
type Provider string

const (
	// ProviderAuto tries CUDA and falls back to the CPU.
	ProviderAuto Provider = "auto"
	// ProviderCPU always runs on the CPU.
	ProviderCPU Provider = "cpu"
	// ProviderCUDA requires CUDA and fails when it is not available.
	ProviderCUDA Provider = "cuda"
)

// Config tunes the runtime. Zero values take the documented defaults.
type Config struct {
	// LibraryPath is the configured shared library; see LibraryPath.
	LibraryPath string `yaml:"library_path"`
	// Provider is auto (default), cpu or cuda.
	Provider Provider `yaml:"provider"`
	// PoolSize is the number of sessions per model, i.e. how many requests may
	// run one model at the same time. Default: the number of CPU cores.
	PoolSize int `yaml:"pool_size"`
	// IntraOpThreads is the thread count inside one operator of one session.
	// Default 1: with one session per core, requests run in parallel across
	// sessions, which on a 2-core machine gives more throughput than two
	// threads fighting over one small convolution (see bench/imageapi).
	IntraOpThreads int `yaml:"intra_op_threads"`
	// InterOpThreads is the thread count across independent operators;
	// default 1 (the models here are sequential chains).
	InterOpThreads int `yaml:"inter_op_threads"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Provider == "" {
		c.Provider = ProviderAuto
	}
	if c.PoolSize <= 0 {
		c.PoolSize = runtime.NumCPU()
	}
	if c.IntraOpThreads <= 0 {
		c.IntraOpThreads = 1
	}
	if c.InterOpThreads <= 0 {
		c.InterOpThreads = 1
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch c.Provider {
	case "", ProviderAuto, ProviderCPU, ProviderCUDA:
	default:
		return fmt.Errorf("ort provider %q: want auto, cpu or cuda", c.Provider)
	}
	if c.PoolSize < 0 || c.IntraOpThreads < 0 || c.InterOpThreads < 0 {
		return fmt.Errorf("ort pool_size and thread counts must not be negative")
	}
	return nil
}

// Runtime is the process-wide ONNX Runtime environment plus the settings every
// session is created with. ONNX Runtime allows one environment per process,
// so Open initialises it once and later calls share it.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	libPath string

	mu       sync.Mutex
	provider Provider // the provider sessions actually use, decided on the first session

	recorder atomic.Pointer[func(*Session, []Tensor)]
}

// SetRecorder makes every Run of this runtime's sessions hand its session
// and inputs to f before running (nil stops it). Benchmarks use it to replay
// the exact tensors of a pipeline through bare onnxruntime_go sessions; f
// must not keep or change the tensors' data beyond the call unless it copies.
func (r *Runtime) SetRecorder(f func(s *Session, inputs []Tensor)) {
	if f == nil {
		r.recorder.Store(nil)
		return
	}
	r.recorder.Store(&f)
}

// SessionOptions returns new options with this runtime's thread and
// provider settings (benchmarks build bare sessions with them); the caller
// destroys them.
func (r *Runtime) SessionOptions() (*onnx.SessionOptions, error) { return r.sessionOptions() }

var (
	envMu      sync.Mutex
	envLibPath string
)

// Open initialises the ONNX Runtime environment (once per process) and
// returns a Runtime whose sessions follow cfg.
func Open(cfg Config, log *slog.Logger) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	lib, err := LibraryPath(cfg.LibraryPath)
	if err != nil {
		return nil, err
	}
	envMu.Lock()
	defer envMu.Unlock()
	if !onnx.IsInitialized() {
		onnx.SetSharedLibraryPath(lib)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("initialise onnxruntime from %s: %w", lib, err)
		}
		envLibPath = lib
		log.Info("onnxruntime loaded", "library", lib, "version", onnx.GetVersion())
	} else if envLibPath != lib {
		log.Warn("onnxruntime already loaded from another library; keeping it", "loaded", envLibPath, "requested", lib)
	}
	return &Runtime{cfg: cfg, log: log, libPath: envLibPath}, nil
}

// Config returns the effective configuration.
func (r *Runtime) Config() Config { return r.cfg }

// Provider returns the execution provider in use; it is known once the first
// session exists (ProviderAuto before that).
func (r *Runtime) Provider() Provider {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.provider == "" {
		return ProviderAuto
	}
	return r.provider
}

// sessionOptions builds the options of one session, attaching CUDA when the
// configuration asks for it and the library supports it.
func (r *Runtime) sessionOptions() (*onnx.SessionOptions, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	opts, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	fail := func(err error) (*onnx.SessionOptions, error) {
		opts.Destroy()
		return nil, err
	}
	if err := opts.SetIntraOpNumThreads(r.cfg.IntraOpThreads); err != nil {
		return fail(fmt.Errorf("intra-op threads: %w", err))
	}
	if err := opts.SetInterOpNumThreads(r.cfg.InterOpThreads); err != nil {
		return fail(fmt.Errorf("inter-op threads: %w", err))
	}
	// Idle ORT worker threads spin by default; on a small shared machine that
	// burns the cores other requests need.
	if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return fail(fmt.Errorf("disable spinning: %w", err))
	}
	if err := opts.AddSessionConfigEntry("session.inter_op.allow_spinning", "0"); err != nil {
		return fail(fmt.Errorf("disable spinning: %w", err))
	}
	if r.cfg.Provider == ProviderCPU {
		r.decide(ProviderCPU, "configured provider is cpu")
		return opts, nil
	}
	if r.provider == ProviderCPU && r.cfg.Provider == ProviderAuto {
		return opts, nil // CUDA already failed once; do not retry per session
	}
	cudaErr := r.appendCUDA(opts)
	if cudaErr == nil {
		r.decide(ProviderCUDA, "CUDA execution provider attached")
		return opts, nil
	}
	if r.cfg.Provider == ProviderCUDA {
		return fail(fmt.Errorf("provider cuda is required but not available: %w", cudaErr))
	}
	r.decide(ProviderCPU, "CUDA execution provider not available: "+cudaErr.Error())
	return opts, nil
}

// cudaProviderLib is the plugin ONNX Runtime loads for CUDA, from the folder
// of the main library. The CPU-only npm build does not ship it.
const cudaProviderLib = "libonnxruntime_providers_cuda.so"

func (r *Runtime) appendCUDA(opts *onnx.SessionOptions) error {
	// Checking first gives a clear reason and spares ORT's own error print.
	plugin := filepath.Join(filepath.Dir(r.libPath), cudaProviderLib)
	if _, err := os.Stat(plugin); err != nil {
		return fmt.Errorf("%s not found next to the runtime library (the npm build is CPU-only; install the onnxruntime GPU build and point %s at it)", cudaProviderLib, EnvLibraryPath)
	}
	cuda, err := onnx.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	return opts.AppendExecutionProviderCUDA(cuda)
}

// decide records and logs, once, which provider the sessions use and why.
// The caller holds r.mu.
func (r *Runtime) decide(p Provider, why string) {
	if r.provider != "" {
		return
	}
	r.provider = p
	r.log.Info("onnxruntime execution provider", "provider", string(p), "reason", why,
		"pool_size", r.cfg.PoolSize, "intra_op_threads", r.cfg.IntraOpThreads, "inter_op_threads", r.cfg.InterOpThreads)
}
