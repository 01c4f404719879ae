package verifymatcher

import (
	"context"
	"fmt"

	commonv1 "github.com/vigilhq/vigil/gen/go/vigil/common/v1"
	verifymatcherv1 "github.com/vigilhq/vigil/gen/go/vigil/verifymatcher/v1"
)

// Server implements verifymatcherv1.VerifyMatcherServiceServer; it converts types
// and maps errors only.
type Server struct {
	verifymatcherv1.UnimplementedVerifyMatcherServiceServer
	verifier  *Verifier
	extractor *Extractor
}

// NewServer returns the gRPC service.
func NewServer(v *Verifier, e *Extractor) *Server { return &Server{verifier: v, extractor: e} }

func fromProto(t *commonv1.Template) Template {
	return Template{ModelID: t.GetModel(), Vector: t.GetVector()}
}

func fromProtos(ts []*commonv1.Template) []Template {
	out := make([]Template, len(ts))
	for i, t := range ts {
		out[i] = fromProto(t)
	}
	return out
}

func ruleFromProto(r *verifymatcherv1.DecisionRule) Rule {
	switch x := r.GetRule().(type) {
	case *verifymatcherv1.DecisionRule_MinScore:
		return ScoreRule(x.MinScore)
	case *verifymatcherv1.DecisionRule_FalseMatchRate:
		return FMRRule(x.FalseMatchRate)
	}
	return Rule{}
}

func thresholdToProto(t Threshold) *verifymatcherv1.Threshold {
	return &verifymatcherv1.Threshold{MinScore: t.Score, FalseMatchRate: t.FMR, Extrapolated: t.Extrapolated}
}

func verificationToProto(v Verification) *verifymatcherv1.Verification {
	return &verifymatcherv1.Verification{Score: v.Score, SamePerson: v.Same}
}

func checkWorkspace(ws string) error {
	if ws == "" {
		return fmt.Errorf("%w: workspace_id is required", ErrInvalidArgument)
	}
	return nil
}

func (s *Server) Verify(_ context.Context, req *verifymatcherv1.VerifyRequest) (*verifymatcherv1.VerifyResponse, error) {
	if err := checkWorkspace(req.GetWorkspaceId()); err != nil {
		return nil, toStatus(err)
	}
	v, th, err := s.verifier.Verify(fromProto(req.GetProbe()), fromProto(req.GetCandidate()), ruleFromProto(req.GetRule()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &verifymatcherv1.VerifyResponse{Verification: verificationToProto(v), Threshold: thresholdToProto(th)}, nil
}

func (s *Server) VerifyImages(ctx context.Context, req *verifymatcherv1.VerifyImagesRequest) (*verifymatcherv1.VerifyImagesResponse, error) {
	if err := checkWorkspace(req.GetWorkspaceId()); err != nil {
		return nil, toStatus(err)
	}
	v, th, pt, ct, err := s.verifier.VerifyImages(ctx, s.extractor, req.GetWorkspaceId(), req.GetProbeImage(), req.GetCandidateImage(), ruleFromProto(req.GetRule()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &verifymatcherv1.VerifyImagesResponse{Verification: verificationToProto(v), Threshold: thresholdToProto(th),
		ProbeTemplate:     &commonv1.Template{Vector: pt.Vector, Model: pt.ModelID},
		CandidateTemplate: &commonv1.Template{Vector: ct.Vector, Model: ct.ModelID}}, nil
}

func (s *Server) VerifyOneToMany(_ context.Context, req *verifymatcherv1.VerifyOneToManyRequest) (*verifymatcherv1.VerifyOneToManyResponse, error) {
	if err := checkWorkspace(req.GetWorkspaceId()); err != nil {
		return nil, toStatus(err)
	}
	vs, th, err := s.verifier.OneToMany(fromProto(req.GetProbe()), fromProtos(req.GetCandidates()), ruleFromProto(req.GetRule()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &verifymatcherv1.VerifyOneToManyResponse{Threshold: thresholdToProto(th), Verifications: make([]*verifymatcherv1.Verification, len(vs))}
	for i, v := range vs {
		out.Verifications[i] = verificationToProto(v)
	}
	return out, nil
}

func (s *Server) VerifyManyToMany(_ context.Context, req *verifymatcherv1.VerifyManyToManyRequest) (*verifymatcherv1.VerifyManyToManyResponse, error) {
	if err := checkWorkspace(req.GetWorkspaceId()); err != nil {
		return nil, toStatus(err)
	}
	scores, same, th, err := s.verifier.ManyToMany(fromProtos(req.GetProbes()), fromProtos(req.GetCandidates()), ruleFromProto(req.GetRule()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &verifymatcherv1.VerifyManyToManyResponse{Scores: scores, SamePerson: same, Threshold: thresholdToProto(th)}, nil
}

var _ verifymatcherv1.VerifyMatcherServiceServer = (*Server)(nil)
