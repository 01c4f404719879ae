package vision

import (
	"context"
	"fmt"
	"math"

	"golang.org/x/sync/errgroup"

	"github.com/vigilhq/vigil/ml/imgproc"
)

// Request is one image and what to do with it.
type Request struct {
	// Image is the decoded, upright image (Engine.Decode makes it).
	Image *imgproc.RGB
	// Units to run. At least one.
	Units Units
	// Objects the client already has (boxes in pixels), to chain units over
	// them. Units add their attributes to these objects. When a face unit is
	// requested and no face object is given, the face detector runs first;
	// when UnitFaceDetector (UnitBodyDetector) is requested, its detections
	// replace the given faces (bodies).
	Objects []*Object
	// Face overrides the engine's detector options; zero fields keep them.
	Face FaceOptions
}

// Process runs the requested units on one image. No face found is not an
// error: the sample then has no face objects.
//
// Order: face detection (when asked for, or needed because no faces were
// given), landmarks (when asked for, or needed by age, quality or a template
// of a face without detector points), then template, age, gender, emotion,
// mask, liveness and quality on every face, side by side; body detection
// runs beside that whole chain. Batched models (template, age) take all
// faces of the image in one Run.
func (e *Engine) Process(ctx context.Context, req Request) (*Sample, error) {
	if req.Image == nil || req.Image.W == 0 || req.Image.H == 0 {
		return nil, fmt.Errorf("%w: no image", ErrInvalidRequest)
	}
	if len(req.Units) == 0 {
		return nil, fmt.Errorf("%w: no units requested", ErrInvalidRequest)
	}
	img := req.Image
	var faces, bodies []*Object
	for i, o := range req.Objects {
		if err := validObject(o, img.W, img.H); err != nil {
			return nil, fmt.Errorf("%w: objects[%d]: %w", ErrInvalidRequest, i, err)
		}
		if o.Confidence == 0 {
			o.Confidence = 1
		}
		switch o.Class {
		case ClassFace:
			faces = append(faces, o)
		case ClassBody:
			bodies = append(bodies, o)
		}
	}
	u := req.Units

	// The body detector is independent of the face chain: it runs beside it,
	// so one request can use a second core while the face models run.
	g, gctx := errgroup.WithContext(ctx)
	if u.Has(UnitBodyDetector) {
		g.Go(func() error {
			detected, err := e.body.detect(gctx, img, e.cfg.Body)
			if err != nil {
				return fmt.Errorf("body detector: %w", err)
			}
			bodies = detected
			return nil
		})
	}
	g.Go(func() error {
		if u.Has(UnitFaceDetector) || (u.anyFace() && len(faces) == 0) {
			detected, err := e.detector.detect(gctx, img, e.faceOptions(req.Face))
			if err != nil {
				return fmt.Errorf("face detector: %w", err)
			}
			faces = detected
		}
		if len(faces) == 0 {
			return nil
		}
		return e.runFaceUnits(gctx, img, u, faces)
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}

	s := &Sample{Width: img.W, Height: img.H}
	s.Objects = append(s.Objects, faces...)
	s.Objects = append(s.Objects, bodies...)
	assignIDs(s.Objects)
	return s, nil
}

func (e *Engine) runFaceUnits(ctx context.Context, img *imgproc.RGB, u Units, faces []*Object) error {
	// Landmarks: always when the fitter is asked for; otherwise only for the
	// faces that lack them and need them.
	var toFit []*Object
	for _, f := range faces {
		needs := u.Has(UnitFaceFitter) ||
			(f.Landmarks68 == nil && (u.Has(UnitAge) || u.Has(UnitQuality) && f.Pose == nil ||
				u.Has(UnitTemplateExtractor) && len(f.Keypoints) != 5))
		if needs {
			toFit = append(toFit, f)
		}
	}
	if len(toFit) > 0 {
		if err := e.fitter.fit(ctx, img, toFit); err != nil {
			return fmt.Errorf("face fitter: %w", err)
		}
	}
	for _, f := range faces {
		if len(f.Keypoints) != 5 && len(f.Landmarks68) == 68 {
			f.Keypoints = fivePoints(f.Landmarks68)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	steps := []struct {
		unit Unit
		run  func() error
	}{
		{UnitTemplateExtractor, func() error { return e.templates.extract(gctx, img, faces) }},
		{UnitAge, func() error { return e.age.estimate(gctx, img, faces) }},
		{UnitGender, func() error { return e.gender.estimate(gctx, img, faces) }},
		{UnitEmotion, func() error { return e.emotion.estimate(gctx, img, faces) }},
		{UnitMask, func() error { return e.mask.estimate(gctx, img, faces) }},
		{UnitLiveness, func() error { return e.liveness.estimate(gctx, img, faces) }},
		{UnitQuality, func() error {
			for _, f := range faces {
				f.Quality = assessQuality(img, f)
			}
			return nil
		}},
	}
	// The units below read what the fitter and detector wrote and each
	// writes only its own field of every face, so they run side by side, as
	// many at once as a model has sessions.
	g.SetLimit(e.cfg.ORT.PoolSize)
	for _, s := range steps {
		if !u.Has(s.unit) {
			continue
		}
		g.Go(func() error {
			if err := s.run(); err != nil {
				return fmt.Errorf("%s: %w", s.unit, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (e *Engine) faceOptions(o FaceOptions) FaceOptions {
	d := e.cfg.Face
	if o.ScoreThreshold > 0 {
		d.ScoreThreshold = o.ScoreThreshold
	}
	if o.NMSIoU > 0 {
		d.NMSIoU = o.NMSIoU
	}
	if o.MinFaceSize > 0 {
		d.MinFaceSize = o.MinFaceSize
	}
	return d
}

// validObject rejects boxes that are not finite, inverted, degenerate or
// fully outside the image, and points in the wrong number.
func validObject(o *Object, w, h int) error {
	if o == nil {
		return fmt.Errorf("missing")
	}
	if o.Class != ClassFace && o.Class != ClassBody {
		return fmt.Errorf("class: want face or body")
	}
	b := o.Box
	for _, v := range []float64{b.X1, b.Y1, b.X2, b.Y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("box: not a finite number")
		}
	}
	if b.W() < 1 || b.H() < 1 {
		return fmt.Errorf("box: empty or inverted (x1 < x2 and y1 < y2 required)")
	}
	if b.X2 <= 0 || b.Y2 <= 0 || b.X1 >= float64(w) || b.Y1 >= float64(h) {
		return fmt.Errorf("box: outside the image")
	}
	if n := len(o.Keypoints); n != 0 && n != 5 {
		return fmt.Errorf("keypoints: want 5 detector points, got %d", n)
	}
	if n := len(o.Landmarks68); n != 0 && n != 68 {
		return fmt.Errorf("landmarks: want 68 points, got %d", n)
	}
	if o.Confidence < 0 || o.Confidence > 1 {
		return fmt.Errorf("confidence: want 0..1")
	}
	return nil
}

// assignIDs numbers objects without an ID per class: face-1, face-2, body-1.
func assignIDs(objs []*Object) {
	n := map[Class]int{}
	for _, o := range objs {
		if o.ID != "" {
			continue
		}
		n[o.Class]++
		o.ID = fmt.Sprintf("%s-%d", o.Class, n[o.Class])
	}
}
