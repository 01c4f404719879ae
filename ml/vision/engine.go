package vision

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/vigilhq/vigil/ml/imgproc"
	"github.com/vigilhq/vigil/ml/ort"
	"github.com/vigilhq/vigil/models"
)

// Engine holds every unit's model sessions. It is safe for concurrent use;
// concurrency per model is bounded by the ORT session pool.
type Engine struct {
	cfg Config
	log *slog.Logger
	rt  *ort.Runtime

	detector  *faceDetector
	fitter    *faceFitter
	templates *templateExtractor
	age       *ageEstimator
	gender    *genderEstimator
	emotion   *emotionEstimator
	mask      *maskEstimator
	liveness  *livenessEstimator
	body      *bodyDetector

	closers []func() error
}

// NewEngine loads the ONNX Runtime and every model.
func NewEngine(cfg Config, log *slog.Logger) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	rt, err := ort.Open(cfg.ORT, log)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: log, rt: rt}
	src := models.Source{Dir: cfg.ModelDir}
	steps := []func() error{
		func() (err error) { e.detector, err = newFaceDetector(rt, src); return track(e, e.detector, err) },
		func() (err error) { e.fitter, err = newFaceFitter(rt, src); return track(e, e.fitter, err) },
		func() (err error) {
			e.templates, err = newTemplateExtractor(rt, src, cfg.MaxBatch)
			return track(e, e.templates, err)
		},
		func() (err error) { e.age, err = newAgeEstimator(rt, src, cfg.MaxBatch); return track(e, e.age, err) },
		func() (err error) { e.gender, err = newGenderEstimator(rt, src); return track(e, e.gender, err) },
		func() (err error) { e.emotion, err = newEmotionEstimator(rt, src); return track(e, e.emotion, err) },
		func() (err error) { e.mask, err = newMaskEstimator(rt, src); return track(e, e.mask, err) },
		func() (err error) { e.liveness, err = newLivenessEstimator(rt, src); return track(e, e.liveness, err) },
		func() (err error) { e.body, err = newBodyDetector(rt, src); return track(e, e.body, err) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			e.Close()
			return nil, fmt.Errorf("load models: %w", err)
		}
	}
	log.Info("image engine ready", "provider", string(rt.Provider()), "template_model", TemplateModel, "template_version", e.templates.version)
	return e, nil
}

// sessionHolder is any unit that owns one ORT session.
type sessionHolder interface{ session() *ort.Session }

func track(e *Engine, u sessionHolder, err error) error {
	if err != nil {
		return err
	}
	e.closers = append(e.closers, u.session().Close)
	return nil
}

// Close releases every session.
func (e *Engine) Close() error {
	var errs []error
	for _, c := range e.closers {
		errs = append(errs, c())
	}
	e.closers = nil
	return errors.Join(errs...)
}

// Provider is the execution provider the models run on.
func (e *Engine) Provider() ort.Provider { return e.rt.Provider() }

// TemplateVersion is the version string of the templates this engine makes.
func (e *Engine) TemplateVersion() string { return e.templates.version }

// Limits are the image limits Decode enforces.
func (e *Engine) Limits() imgproc.Limits { return e.cfg.Limits }

// Decode decodes an encoded image within the engine's limits.
func (e *Engine) Decode(data []byte) (*imgproc.Decoded, error) {
	return imgproc.Decode(data, e.cfg.Limits)
}

func (d *faceDetector) session() *ort.Session      { return d.sess }
func (t *templateExtractor) session() *ort.Session { return t.sess }

// Runtime is the ONNX Runtime the engine's sessions run on (benchmarks use
// its recorder and session options).
func (e *Engine) Runtime() *ort.Runtime { return e.rt }
