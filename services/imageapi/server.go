package imageapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	imageapiv1 "github.com/vigilhq/vigil/gen/go/vigil/imageapi/v1"
	"github.com/vigilhq/vigil/ml/vision"
)

// Server is the gRPC ImageApiService. It converts types, checks the license
// seam and maps errors; the work is vision.Engine's.
type Server struct {
	imageapiv1.UnimplementedImageApiServiceServer

	cfg     Config
	engine  *vision.Engine
	units   UnitChecker // nil: no licensing client wired (see UnitChecker)
	metrics *metrics
	log     *slog.Logger
}

// NewServer builds a Server on a loaded engine and registers its metrics on
// reg. units may be nil (no licensing client wired; see UnitChecker).
func NewServer(cfg Config, engine *vision.Engine, units UnitChecker, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, engine: engine, units: units, metrics: m, log: log}, nil
}

// Process runs the requested units on every sample.
func (s *Server) Process(ctx context.Context, req *imageapiv1.ProcessRequest) (*imageapiv1.ProcessResponse, error) {
	defer s.metrics.observe("Process", time.Now())
	samples := req.GetSamples()
	if len(samples) == 0 {
		return nil, toStatus(invalid("samples", "at least one sample is required"))
	}
	if len(samples) > s.cfg.MaxSamples {
		return nil, toStatus(invalid("samples", "%d samples, at most %d per call", len(samples), s.cfg.MaxSamples))
	}
	units, err := unitsFromProto(req.GetUnits())
	if err != nil {
		return nil, toStatus(err)
	}
	face := faceOptions(req.GetFaceDetector())
	out := make([]*imageapiv1.Sample, len(samples))
	g, gctx := errgroup.WithContext(ctx)
	// The engine's session pools bound model concurrency; this bounds the
	// decoded images held at once.
	g.SetLimit(s.cfg.ORT.PoolSize)
	for i, in := range samples {
		g.Go(func() error {
			res, err := s.run(gctx, fmt.Sprintf("samples[%d].", i), in.GetImage(), in.GetObjects(), units, face)
			out[i] = res
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, toStatus(err)
	}
	return &imageapiv1.ProcessResponse{Samples: out}, nil
}

// DetectFaces runs the face detector.
func (s *Server) DetectFaces(ctx context.Context, req *imageapiv1.DetectFacesRequest) (*imageapiv1.DetectFacesResponse, error) {
	sample, err := s.unit(ctx, "DetectFaces", req.GetImage(), nil, vision.UnitFaceDetector, faceOptions(req.GetOptions()))
	return &imageapiv1.DetectFacesResponse{Sample: sample}, err
}

// FitFaces runs the face fitter.
func (s *Server) FitFaces(ctx context.Context, req *imageapiv1.FitFacesRequest) (*imageapiv1.FitFacesResponse, error) {
	sample, err := s.unit(ctx, "FitFaces", req.GetImage(), req.GetObjects(), vision.UnitFaceFitter, vision.FaceOptions{})
	return &imageapiv1.FitFacesResponse{Sample: sample}, err
}

// ExtractTemplates runs the template extractor.
func (s *Server) ExtractTemplates(ctx context.Context, req *imageapiv1.ExtractTemplatesRequest) (*imageapiv1.ExtractTemplatesResponse, error) {
	sample, err := s.unit(ctx, "ExtractTemplates", req.GetImage(), req.GetObjects(), vision.UnitTemplateExtractor, vision.FaceOptions{})
	return &imageapiv1.ExtractTemplatesResponse{Sample: sample}, err
}

// EstimateAge runs the age estimator.
func (s *Server) EstimateAge(ctx context.Context, req *imageapiv1.EstimateAgeRequest) (*imageapiv1.EstimateAgeResponse, error) {
	sample, err := s.unit(ctx, "EstimateAge", req.GetImage(), req.GetObjects(), vision.UnitAge, vision.FaceOptions{})
	return &imageapiv1.EstimateAgeResponse{Sample: sample}, err
}

// EstimateGender runs the gender estimator.
func (s *Server) EstimateGender(ctx context.Context, req *imageapiv1.EstimateGenderRequest) (*imageapiv1.EstimateGenderResponse, error) {
	sample, err := s.unit(ctx, "EstimateGender", req.GetImage(), req.GetObjects(), vision.UnitGender, vision.FaceOptions{})
	return &imageapiv1.EstimateGenderResponse{Sample: sample}, err
}

// EstimateEmotion runs the emotion estimator.
func (s *Server) EstimateEmotion(ctx context.Context, req *imageapiv1.EstimateEmotionRequest) (*imageapiv1.EstimateEmotionResponse, error) {
	sample, err := s.unit(ctx, "EstimateEmotion", req.GetImage(), req.GetObjects(), vision.UnitEmotion, vision.FaceOptions{})
	return &imageapiv1.EstimateEmotionResponse{Sample: sample}, err
}

// EstimateMask runs the mask estimator.
func (s *Server) EstimateMask(ctx context.Context, req *imageapiv1.EstimateMaskRequest) (*imageapiv1.EstimateMaskResponse, error) {
	sample, err := s.unit(ctx, "EstimateMask", req.GetImage(), req.GetObjects(), vision.UnitMask, vision.FaceOptions{})
	return &imageapiv1.EstimateMaskResponse{Sample: sample}, err
}

// EstimateLiveness runs the liveness estimator (after the detector when no
// faces are given).
func (s *Server) EstimateLiveness(ctx context.Context, req *imageapiv1.EstimateLivenessRequest) (*imageapiv1.EstimateLivenessResponse, error) {
	sample, err := s.unit(ctx, "EstimateLiveness", req.GetImage(), req.GetObjects(), vision.UnitLiveness, vision.FaceOptions{})
	return &imageapiv1.EstimateLivenessResponse{Sample: sample}, err
}

// AssessQuality runs the quality assessment.
func (s *Server) AssessQuality(ctx context.Context, req *imageapiv1.AssessQualityRequest) (*imageapiv1.AssessQualityResponse, error) {
	sample, err := s.unit(ctx, "AssessQuality", req.GetImage(), req.GetObjects(), vision.UnitQuality, vision.FaceOptions{})
	return &imageapiv1.AssessQualityResponse{Sample: sample}, err
}

// DetectBodies runs the body detector.
func (s *Server) DetectBodies(ctx context.Context, req *imageapiv1.DetectBodiesRequest) (*imageapiv1.DetectBodiesResponse, error) {
	sample, err := s.unit(ctx, "DetectBodies", req.GetImage(), nil, vision.UnitBodyDetector, vision.FaceOptions{})
	return &imageapiv1.DetectBodiesResponse{Sample: sample}, err
}

// unit serves a single-unit RPC.
func (s *Server) unit(ctx context.Context, rpcName string, image []byte, objects []*imageapiv1.ImageObject, u vision.Unit, face vision.FaceOptions) (*imageapiv1.Sample, error) {
	defer s.metrics.observe(rpcName, time.Now())
	sample, err := s.run(ctx, "", image, objects, vision.NewUnits(u), face)
	return sample, toStatus(err)
}

// run decodes one image, converts its objects, checks the license and runs
// the engine. prefix is the request field path of the sample ("" or
// "samples[2].").
func (s *Server) run(ctx context.Context, prefix string, image []byte, objects []*imageapiv1.ImageObject, units vision.Units, face vision.FaceOptions) (*imageapiv1.Sample, error) {
	if len(image) == 0 {
		return nil, invalid(prefix+"image", "required")
	}
	decoded, err := s.engine.Decode(image)
	if err != nil {
		s.metrics.badImages.Inc()
		return nil, atField(prefix+"image", err)
	}
	givenObjs, err := objectsFromProto(prefix+"objects", objects, decoded.W, decoded.H)
	if err != nil {
		return nil, err
	}
	hasFaces := false
	req := vision.Request{Image: decoded.RGB, Units: units, Face: face}
	origins := map[*vision.Object]*imageapiv1.ImageObject{}
	for _, g := range givenObjs {
		req.Objects = append(req.Objects, g.obj)
		origins[g.obj] = g.orig
		hasFaces = hasFaces || g.obj.Class == vision.ClassFace
	}
	if err := s.checkLicense(ctx, units, !hasFaces && needsFaces(units)); err != nil {
		return nil, err
	}
	sample, err := s.engine.Process(ctx, req)
	if err != nil {
		return nil, atField(prefix+"objects", err)
	}
	s.metrics.count(sample)
	return sampleToProto(sample, origins), nil
}

// needsFaces reports whether a unit works on faces (so the detector runs
// when none are given).
func needsFaces(u vision.Units) bool {
	for _, x := range u.List() {
		if x != vision.UnitFaceDetector && x != vision.UnitBodyDetector {
			return true
		}
	}
	return false
}

func faceOptions(o *imageapiv1.FaceDetectorOptions) vision.FaceOptions {
	return vision.FaceOptions{ScoreThreshold: float64(o.GetScoreThreshold()), MinFaceSize: float64(o.GetMinFaceSize())}
}
