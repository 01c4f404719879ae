package verifymatcher

import (
	"errors"
	"fmt"
	"math"
)

// Domain errors; toStatus in errors.go maps them to gRPC codes.
var (
	ErrInvalidTemplate = errors.New("invalid template")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrModelMismatch   = errors.New("templates come from different models")
	ErrNoFMRTable      = errors.New("no false-match-rate table for the model")
	ErrNoFace          = errors.New("no face found")
	ErrImageAPI        = errors.New("image api unavailable")
)

// Template is an embedding and the opaque id of the model that made it.
type Template struct {
	ModelID string
	Vector  []float32
}

// Rule is how the caller sets the decision threshold: a raw score, a target
// false-match rate, or neither (the model's default).
type Rule struct {
	MinScore        *float32
	FalseMatchRate  float64
	hasFalseMatchRt bool
}

// ScoreRule returns a rule with a raw cosine threshold.
func ScoreRule(s float32) Rule { return Rule{MinScore: &s} }

// FMRRule returns a rule with a target false-match rate.
func FMRRule(fmr float64) Rule { return Rule{FalseMatchRate: fmr, hasFalseMatchRt: true} }

// Threshold is the score a decision used and what the table says of it.
type Threshold struct {
	Score        float32
	FMR          float64 // 0 when the caller gave a raw score for a model without a table
	Extrapolated bool
}

// Verification is one comparison.
type Verification struct {
	Score float32
	Same  bool
}

// DefaultFMR is the rate used when a request gives no rule.
const DefaultFMR = 1e-4

// Verifier scores templates and applies thresholds from the FMR tables.
type Verifier struct {
	tables map[string]fmrTable
}

// NewVerifier returns a Verifier with the measured tables.
func NewVerifier() *Verifier { return &Verifier{tables: measuredTables()} }

// Threshold resolves a rule for a model.
func (v *Verifier) Threshold(modelID string, r Rule) (Threshold, error) {
	t, hasTable := v.tables[modelID]
	switch {
	case r.MinScore != nil:
		s := *r.MinScore
		if math.IsNaN(float64(s)) || s < -1 || s > 1 {
			return Threshold{}, fmt.Errorf("%w: rule.min_score must be within -1..1", ErrInvalidArgument)
		}
		th := Threshold{Score: s}
		if hasTable {
			th.FMR, th.Extrapolated = t.rateAt(s)
		}
		return th, nil
	case r.hasFalseMatchRt:
		if r.FalseMatchRate < 1e-6 || r.FalseMatchRate > 1e-3 || math.IsNaN(r.FalseMatchRate) {
			return Threshold{}, fmt.Errorf("%w: rule.false_match_rate must be within 1e-6..1e-3", ErrInvalidArgument)
		}
		if !hasTable {
			return Threshold{}, fmt.Errorf("%w %q: give rule.min_score instead", ErrNoFMRTable, modelID)
		}
		s, extrapolated := t.scoreAt(r.FalseMatchRate)
		return Threshold{Score: s, FMR: r.FalseMatchRate, Extrapolated: extrapolated}, nil
	default:
		if !hasTable {
			return Threshold{}, fmt.Errorf("%w %q: give rule.min_score", ErrNoFMRTable, modelID)
		}
		s, extrapolated := t.scoreAt(DefaultFMR)
		return Threshold{Score: s, FMR: DefaultFMR, Extrapolated: extrapolated}, nil
	}
}

// checkTemplate validates a vector and returns it L2-normalised.
func checkTemplate(field string, t Template, dim int) ([]float32, error) {
	if t.ModelID == "" {
		return nil, fmt.Errorf("%w: %s.model is required", ErrInvalidArgument, field)
	}
	if len(t.Vector) == 0 {
		return nil, fmt.Errorf("%w: %s.vector is empty", ErrInvalidTemplate, field)
	}
	if dim > 0 && len(t.Vector) != dim {
		return nil, fmt.Errorf("%w: %s.vector has dimension %d, expected %d", ErrInvalidTemplate, field, len(t.Vector), dim)
	}
	var ss float64
	for _, x := range t.Vector {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: %s.vector is not finite", ErrInvalidTemplate, field)
		}
		ss += f * f
	}
	if ss == 0 {
		return nil, fmt.Errorf("%w: %s.vector is zero", ErrInvalidTemplate, field)
	}
	inv := 1 / math.Sqrt(ss)
	out := make([]float32, len(t.Vector))
	for i, x := range t.Vector {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}

func dot(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// prepared is a validated set: every template of one model and dimension.
type prepared struct {
	model string
	vecs  [][]float32
}

func prepare(groups ...namedTemplates) ([]prepared, error) {
	model, dim := "", 0
	out := make([]prepared, len(groups))
	for gi, g := range groups {
		out[gi].vecs = make([][]float32, len(g.ts))
		for i, t := range g.ts {
			field := g.name
			if g.many {
				field = fmt.Sprintf("%s[%d]", g.name, i)
			}
			v, err := checkTemplate(field, t, dim)
			if err != nil {
				return nil, err
			}
			if model == "" {
				model, dim = t.ModelID, len(v)
			} else if t.ModelID != model {
				return nil, fmt.Errorf("%w: %s is %q, the probe %q", ErrModelMismatch, field, t.ModelID, model)
			}
			out[gi].vecs[i] = v
		}
		out[gi].model = model
	}
	return out, nil
}

type namedTemplates struct {
	name string
	many bool
	ts   []Template
}

// Verify compares two templates.
func (v *Verifier) Verify(probe, candidate Template, r Rule) (Verification, Threshold, error) {
	p, err := prepare(namedTemplates{name: "probe", ts: []Template{probe}}, namedTemplates{name: "candidate", ts: []Template{candidate}})
	if err != nil {
		return Verification{}, Threshold{}, err
	}
	th, err := v.Threshold(probe.ModelID, r)
	if err != nil {
		return Verification{}, Threshold{}, err
	}
	s := dot(p[0].vecs[0], p[1].vecs[0])
	return Verification{Score: s, Same: s >= th.Score}, th, nil
}

// MaxOneToMany bounds the candidates of VerifyOneToMany; MaxManyToMany the
// probes x candidates of VerifyManyToMany.
const (
	MaxOneToMany  = 100_000
	MaxManyToMany = 1_000_000
)

// OneToMany compares a probe with each candidate.
func (v *Verifier) OneToMany(probe Template, candidates []Template, r Rule) ([]Verification, Threshold, error) {
	if len(candidates) > MaxOneToMany {
		return nil, Threshold{}, fmt.Errorf("%w: candidates: %d above the limit of %d", ErrInvalidArgument, len(candidates), MaxOneToMany)
	}
	p, err := prepare(namedTemplates{name: "probe", ts: []Template{probe}}, namedTemplates{name: "candidates", many: true, ts: candidates})
	if err != nil {
		return nil, Threshold{}, err
	}
	th, err := v.Threshold(probe.ModelID, r)
	if err != nil {
		return nil, Threshold{}, err
	}
	out := make([]Verification, len(candidates))
	for i, c := range p[1].vecs {
		s := dot(p[0].vecs[0], c)
		out[i] = Verification{Score: s, Same: s >= th.Score}
	}
	return out, th, nil
}

// ManyToMany compares every probe with every candidate; scores are row-major.
func (v *Verifier) ManyToMany(probes, candidates []Template, r Rule) ([]float32, []bool, Threshold, error) {
	if len(probes)*len(candidates) > MaxManyToMany {
		return nil, nil, Threshold{}, fmt.Errorf("%w: probes x candidates: %d above the limit of %d", ErrInvalidArgument, len(probes)*len(candidates), MaxManyToMany)
	}
	if len(probes) == 0 {
		return nil, nil, Threshold{}, fmt.Errorf("%w: probes: at least one is required", ErrInvalidArgument)
	}
	p, err := prepare(namedTemplates{name: "probes", many: true, ts: probes}, namedTemplates{name: "candidates", many: true, ts: candidates})
	if err != nil {
		return nil, nil, Threshold{}, err
	}
	th, err := v.Threshold(probes[0].ModelID, r)
	if err != nil {
		return nil, nil, Threshold{}, err
	}
	scores := make([]float32, len(probes)*len(candidates))
	same := make([]bool, len(scores))
	for i, a := range p[0].vecs {
		for j, b := range p[1].vecs {
			s := dot(a, b)
			scores[i*len(candidates)+j] = s
			same[i*len(candidates)+j] = s >= th.Score
		}
	}
	return scores, same, th, nil
}
